//! GenericXLog as a guard: pages registered with it are written through private images and
//! WAL-logged atomically by [`WalGuard::finish`]; dropping an unfinished guard (an `ERROR`
//! unwinding, an early return) aborts it and leaves the pages untouched.

use pgrx::pg_sys;

use super::buffer::LockedBuffer;

pub struct WalGuard {
    state: *mut pg_sys::GenericXLogState,
}

impl WalGuard {
    pub fn start(rel: pg_sys::Relation) -> Self {
        WalGuard {
            state: unsafe { pg_sys::GenericXLogStart(rel) },
        }
    }

    /// The writable image of `buf`'s page. `full` logs the whole page (for a page being
    /// initialised); otherwise only the changed bytes are logged.
    pub fn register(&mut self, buf: &LockedBuffer, full: bool) -> pg_sys::Page {
        let flags = if full {
            pg_sys::GENERIC_XLOG_FULL_IMAGE as i32
        } else {
            0
        };
        unsafe { pg_sys::GenericXLogRegisterBuffer(self.state, buf.raw(), flags) }
    }

    pub fn finish(mut self) {
        unsafe { pg_sys::GenericXLogFinish(self.state) };
        self.state = std::ptr::null_mut();
    }
}

impl Drop for WalGuard {
    fn drop(&mut self) {
        if !self.state.is_null() {
            unsafe { pg_sys::GenericXLogAbort(self.state) };
        }
    }
}

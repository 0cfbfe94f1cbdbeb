"""Throwaway PostgreSQL 15 clusters for integration tests that need their own server:
crash recovery (kill -9) and streaming replicas. Run as the `postgres` OS user on private
ports; data lives under /var/tmp/pg_recall/it-*."""
import os
import shutil
import socket
import subprocess
import time

import psycopg

PGBIN = "/usr/lib/postgresql/15/bin"
ROOT = "/var/tmp/pg_recall"


def as_pg(*args, check=True):
    return subprocess.run(["sudo", "-u", "postgres", "--", *args], check=check, capture_output=True, text=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Cluster:
    def __init__(self, name):
        self.data = os.path.join(ROOT, f"it-{name}")
        self.port = free_port()

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _conf(self):
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.data}'\n")

    def init(self):
        shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data)
        shutil.chown(self.data, "postgres", "postgres")
        as_pg(f"{PGBIN}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\nshared_buffers = 256MB\nmaintenance_work_mem = 512MB\nwal_level = replica\n"
                    "max_wal_senders = 4\nfsync = on\n")
        self._conf()
        return self

    def replica_of(self, primary):
        shutil.rmtree(self.data, ignore_errors=True)
        as_pg(f"{PGBIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
              "-D", self.data, "-R", "-X", "stream")
        self._conf()
        return self

    def start(self, tries=60):
        for _ in range(tries):
            r = as_pg(f"{PGBIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.data, "server.log"),
                      "-w", "start", check=False)
            if r.returncode == 0:
                return self
            time.sleep(0.5)  # after a kill -9 the old backends may still hold shared memory
        raise RuntimeError(f"could not start {self.data}: {r.stdout} {r.stderr}")

    def stop(self):
        as_pg(f"{PGBIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)

    def kill9(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            pid = int(f.readline())
        subprocess.run(["kill", "-9", str(pid)], check=True)
        # Wait until the postmaster is gone; its children exit on their own.
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.1)

    def connect(self):
        return psycopg.connect(self.url, autocommit=True)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)

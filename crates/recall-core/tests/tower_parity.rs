//! The forward pass against PyTorch: `examples/pytorch/two_tower.py fixture` wrote random
//! weights (f32, f16, bf16), inputs covering empty bags, repeated and out-of-vocabulary ids,
//! and PyTorch's eval-mode outputs. Every output component must match within 1e-5.

use recall_core::tower::{Model, Side, TowerError, Value};
use serde_json::Value as Json;

const TOLERANCE: f32 = 1e-5;

fn fixture(dtype: &str) -> (Vec<u8>, String, Json) {
    let dir = format!(
        "{}/../../tests/fixtures/two_tower/{dtype}",
        env!("CARGO_MANIFEST_DIR")
    );
    let weights = std::fs::read(format!("{dir}/model.safetensors")).expect("weights");
    let config = std::fs::read_to_string(format!("{dir}/config.json")).expect("config");
    let cases =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/cases.json")).expect("cases"))
            .expect("json");
    (weights, config, cases)
}

fn ids(v: &Json) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn floats(v: &Json) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOLERANCE,
            "{what}[{i}]: pg_recall {g}, PyTorch {w}"
        );
    }
}

fn check(model: &Model, cases: &Json, dtype: &str) {
    let user = model.tower(Side::User).unwrap();
    for (n, c) in cases["user"].as_array().unwrap().iter().enumerate() {
        let (f, b) = (floats(&c["features"]), ids(&c["behavior"]));
        let got = user
            .forward(&[
                ("user_id", Value::Id(c["user_id"].as_i64().unwrap())),
                ("features", Value::Dense(&f)),
                ("behavior", Value::Ids(&b)),
            ])
            .unwrap();
        assert_close(
            &got,
            &floats(&c["expected"]),
            &format!("{dtype} user case {n}"),
        );
    }
    let item = model.tower(Side::Item).unwrap();
    for (n, c) in cases["item"].as_array().unwrap().iter().enumerate() {
        let (f, t) = (floats(&c["features"]), ids(&c["tags"]));
        let got = item
            .forward(&[
                ("item_id", Value::Id(c["item_id"].as_i64().unwrap())),
                ("category", Value::Id(c["category"].as_i64().unwrap())),
                ("tags", Value::Ids(&t)),
                ("features", Value::Dense(&f)),
            ])
            .unwrap();
        assert_close(
            &got,
            &floats(&c["expected"]),
            &format!("{dtype} item case {n}"),
        );
    }
}

#[test]
fn matches_pytorch_for_every_dtype() {
    for dtype in ["f32", "f16", "bf16"] {
        let (weights, config, cases) = fixture(dtype);
        assert_eq!(cases["dtype"], dtype);
        // The config from the file's metadata and the same config passed explicitly.
        check(&Model::load(&weights, None).unwrap(), &cases, dtype);
        check(
            &Model::load(&weights, Some(&config)).unwrap(),
            &cases,
            dtype,
        );
    }
}

#[test]
fn null_bag_equals_empty_bag() {
    let (weights, _, cases) = fixture("f32");
    let model = Model::load(&weights, None).unwrap();
    let user = model.tower(Side::User).unwrap();
    let c = &cases["user"][0];
    assert_eq!(
        ids(&c["behavior"]),
        Vec::<i64>::new(),
        "case 0 has an empty bag"
    );
    let f = floats(&c["features"]);
    let id = Value::Id(c["user_id"].as_i64().unwrap());
    let a = user
        .forward(&[
            ("user_id", id),
            ("features", Value::Dense(&f)),
            ("behavior", Value::Null),
        ])
        .unwrap();
    let b = user
        .forward(&[("user_id", id), ("features", Value::Dense(&f))])
        .unwrap();
    assert_close(&a, &floats(&c["expected"]), "NULL behaviour");
    assert_eq!(a, b);
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let (weights, _, _) = fixture("f32");
    let model = Model::load(&weights, None).unwrap();
    let user = model.tower(Side::User).unwrap();
    let f = vec![0.5f32; 6];
    let err = |args: &[(&str, Value)]| match user.forward(args) {
        Err(TowerError::Input(m)) => m,
        other => panic!("expected an input error, got {other:?}"),
    };
    let e = err(&[
        ("user_id", Value::Id(1)),
        ("features", Value::Dense(&f[..5])),
    ]);
    assert!(e.contains("expected 6 features, not 5"), "{e}");
    let e = err(&[("user_id", Value::Null), ("features", Value::Dense(&f))]);
    assert!(e.contains("must not be NULL"), "{e}");
    assert!(err(&[("user_id", Value::Id(1))]).contains("\"features\""));
    // Behaviour ids have no oov_row in the fixture's config.
    let e = err(&[
        ("user_id", Value::Id(1)),
        ("features", Value::Dense(&f)),
        ("behavior", Value::Ids(&[3, 60])),
    ]);
    assert!(
        e.contains("behavior 60 is outside the model's vocabulary (0..59)"),
        "{e}"
    );
    let e = err(&[
        ("user_id", Value::Id(1)),
        ("features", Value::Dense(&f)),
        ("behavior", Value::Ids(&[-1])),
    ]);
    assert!(e.contains("behavior -1"), "{e}");
    let nan = [f32::NAN; 6];
    assert!(err(&[("user_id", Value::Id(1)), ("features", Value::Dense(&nan))]).contains("NaN"));
    let e = err(&[
        ("user_id", Value::Id(1)),
        ("features", Value::Dense(&f)),
        ("tags", Value::Ids(&[1])),
    ]);
    assert!(e.contains("no input \"tags\""), "{e}");
}

#[test]
fn mismatched_weights_name_the_tensor() {
    let (weights, config, _) = fixture("f32");
    let bigger = config.replace("\"vocab\": 40", "\"vocab\": 41");
    assert_ne!(bigger, config);
    let e = Model::load(&weights, Some(&bigger))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "tensor \"user_tower.user_id.weight\" has shape [40, 64], the config expects [41, 64]"
        ),
        "{e}"
    );
    let renamed = config.replace("user_tower.mlp.4", "user_tower.mlp.9");
    let e = Model::load(&weights, Some(&renamed))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tensor \"user_tower.mlp.9.weight\" is missing"),
        "{e}"
    );
    let typo = config.replace("\"normalize\"", "\"normalise\"");
    let e = Model::load(&weights, Some(&typo)).unwrap_err().to_string();
    assert!(e.contains("unknown field `normalise`"), "{e}");
    let chain = config.replacen("\"in\": 192", "\"in\": 190", 1);
    let e = Model::load(&weights, Some(&chain)).unwrap_err().to_string();
    assert!(e.contains("takes 190 inputs but receives 192"), "{e}");
    for cut in [0, 7, 100, weights.len() / 2, weights.len() - 1] {
        assert!(
            matches!(
                Model::load(&weights[..cut], None),
                Err(TowerError::Corrupt(_))
            ),
            "cut {cut}"
        );
    }
}

#[test]
fn reference_config_loads_its_own_random_weights() {
    use recall_core::tower::reference;
    let sizes = reference::Sizes::default();
    let config = reference::config(&sizes);
    let model = Model::load(&reference::random_weights(&config, 3), None).unwrap();
    let user = model.tower(Side::User).unwrap();
    assert_eq!(user.output_dim(), 128);
    assert_eq!(user.features_len(), Some(8));
    let out = user
        .forward(&[
            ("user_id", Value::Id(5)),
            ("features", Value::Dense(&[0.1; 8])),
            ("behavior", Value::Ids(&[1, 2])),
        ])
        .unwrap();
    let norm: f32 = out.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "normalised output, norm {norm}");
}

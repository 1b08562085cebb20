//! Parity with the reference PyTorch model: a tiny checkpoint written by
//! `tools/reference_fixture.py` (weights and the logits PyTorch computed for a few inputs) is
//! loaded, and dpcot must reproduce the logits. No Python needed: the fixture is committed.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use dpcot_model::pretrained::{
    inspect, load_reference, CheckpointError, CheckpointFormat, LoadOptions,
};
use dpcot_model::transformer::token_tensor;
use dpcot_model::{ModelError, Transformer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    vocab_size: usize,
    d_model: usize,
    n_layers: usize,
    n_heads: usize,
    maxlen: usize,
    inputs: Vec<Vec<u32>>,
    logits: Vec<Vec<Vec<f64>>>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(fixtures().join("tiny_reference_logits.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn options(f: &Fixture) -> LoadOptions {
    LoadOptions {
        vocab_size: Some(f.vocab_size),
        ..LoadOptions::new(f.maxlen)
    }
}

/// Largest absolute difference between dpcot's logits and the fixture's, over every input.
fn worst_difference(model: &Transformer, f: &Fixture) -> f64 {
    let device = Device::default();
    let mut worst = 0f64;
    for (ids, expected) in f.inputs.iter().zip(&f.logits) {
        let logits = model.forward(token_tensor(ids, 1, ids.len(), &device));
        assert_eq!(logits.dims(), [1, ids.len(), f.vocab_size]);
        let got: Vec<f32> = logits.into_data().try_into_vec().unwrap();
        for (g, e) in got.iter().zip(expected.iter().flatten()) {
            worst = worst.max((*g as f64 - e).abs());
        }
    }
    worst
}

#[test]
fn a_pytorch_checkpoint_reproduces_the_reference_logits() {
    let f = fixture();
    let path = fixtures().join("tiny_reference.pt");
    let (model, arch) = load_reference(&path, &options(&f), &Device::default()).unwrap();
    assert_eq!(arch.format, CheckpointFormat::Pytorch);
    assert_eq!(
        (arch.vocab_size, arch.d_model, arch.n_layers),
        (f.vocab_size, f.d_model, f.n_layers)
    );
    assert_eq!(arch.n_heads, Some(f.n_heads), "read off the RPE buffer");
    assert_eq!(arch.positions, Some(f.maxlen));
    assert_eq!(model.config().n_heads, f.n_heads);
    let worst = worst_difference(&model, &f);
    assert!(worst < 1e-4, "logits differ by {worst}");
}

#[test]
fn the_same_tensors_as_safetensors_reproduce_the_logits_given_the_heads() {
    let f = fixture();
    let path = fixtures().join("tiny_reference.safetensors");
    // The safetensors fixture has the parameters only: no RPE buffer to tell the heads.
    let err = load_reference(&path, &options(&f), &Device::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Checkpoint {
                error: CheckpointError::HeadsUnknown,
                ..
            }
        ),
        "{err}"
    );
    let opts = LoadOptions {
        n_heads: Some(f.n_heads),
        ..options(&f)
    };
    let (model, arch) = load_reference(&path, &opts, &Device::default()).unwrap();
    assert_eq!(arch.format, CheckpointFormat::Safetensors);
    assert_eq!((arch.n_heads, arch.positions), (None, None));
    let worst = worst_difference(&model, &f);
    assert!(worst < 1e-4, "logits differ by {worst}");

    // Wrong head count: the file loads, but the logits are not the reference's — which is why
    // the count is read off the checkpoint whenever it can be.
    let wrong = LoadOptions {
        n_heads: Some(2),
        ..options(&f)
    };
    let (model, _) = load_reference(&path, &wrong, &Device::default()).unwrap();
    assert!(worst_difference(&model, &f) > 1e-2);
}

#[test]
fn knobs_that_disagree_with_the_checkpoint_are_errors() {
    let f = fixture();
    let path = fixtures().join("tiny_reference.pt");
    let device = Device::default();
    let checkpoint_error = |opts: LoadOptions| match load_reference(&path, &opts, &device) {
        Err(ModelError::Checkpoint { path: p, error }) => {
            assert_eq!(p, path);
            error
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("loaded with {opts:?}"),
    };
    assert!(matches!(
        checkpoint_error(LoadOptions {
            n_heads: Some(2),
            ..options(&f)
        }),
        CheckpointError::HeadsMismatch { given: 2, found: 4 }
    ));
    assert!(matches!(
        checkpoint_error(LoadOptions {
            vocab_size: Some(91),
            ..options(&f)
        }),
        CheckpointError::VocabMismatch {
            expected: 91,
            found: 21
        }
    ));
    let err = checkpoint_error(LoadOptions::new(f.maxlen + 1));
    assert!(
        matches!(
            err,
            CheckpointError::TooFewPositions {
                positions: 16,
                max_len: 17
            }
        ),
        "{err}"
    );
    let arch = inspect(&path).unwrap();
    assert_eq!(arch.n_layers, 2);
}

/// Writes a safetensors file of the fixture's tensors, edited by `edit` (name → (shape, values)).
fn edited_safetensors(
    dir: &Path,
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)>),
) -> PathBuf {
    let bytes = std::fs::read(fixtures().join("tiny_reference.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    let mut tensors = std::collections::BTreeMap::new();
    for (name, info) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(info["dtype"], "F32");
        let shape: Vec<usize> = serde_json::from_value(info["shape"].clone()).unwrap();
        let [start, end]: [usize; 2] =
            serde_json::from_value(info["data_offsets"].clone()).unwrap();
        let values = data[start..end]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        tensors.insert(name.clone(), (shape, values));
    }
    edit(&mut tensors);

    let mut header = serde_json::Map::new();
    let mut body = Vec::new();
    for (name, (shape, values)) in &tensors {
        let start = body.len();
        for v in values {
            body.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, body.len()]}),
        );
    }
    let mut header = serde_json::to_vec(&header).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.extend_from_slice(&body);
    let path = dir.join("edited.safetensors");
    std::fs::write(&path, file).unwrap();
    path
}

#[test]
fn missing_extra_and_misshaped_tensors_are_named() {
    let f = fixture();
    let dir = std::env::temp_dir().join(format!("dpcot-pretrained-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = LoadOptions {
        n_heads: Some(f.n_heads),
        ..options(&f)
    };
    let load = |path: &Path| match load_reference(path, &opts, &Device::default()) {
        Err(ModelError::Checkpoint { error, .. }) => error,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("loaded"),
    };

    let path = edited_safetensors(&dir, |t| {
        t.remove("transformer.h.1.mlp.c_fc.bias");
    });
    let err = load(&path);
    assert!(
        matches!(&err, CheckpointError::MissingTensor { name, expected } if name == "transformer.h.1.mlp.c_fc.bias" && expected == &vec![64]),
        "{err}"
    );

    let path = edited_safetensors(&dir, |t| {
        t.insert(
            "transformer.h.0.attn.extra".into(),
            (vec![2], vec![0.0, 1.0]),
        );
    });
    let err = load(&path);
    assert!(
        err.to_string().contains("`transformer.h.0.attn.extra`"),
        "{err}"
    );

    let path = edited_safetensors(&dir, |t| {
        let (_, values) = t.remove("transformer.h.0.attn.c_attn.weight").unwrap();
        t.insert(
            "transformer.h.0.attn.c_attn.weight".into(),
            (vec![16, 48], values),
        );
    });
    let err = load(&path);
    assert!(
        matches!(&err, CheckpointError::ShapeMismatch { name, expected, found } if name == "transformer.h.0.attn.c_attn.weight" && expected == &vec![48, 16] && found == &vec![16, 48]),
        "{err}"
    );

    // A layer missing in the middle is not renumbered away.
    let path = edited_safetensors(&dir, |t| {
        let layer0: Vec<String> = t
            .keys()
            .filter(|k| k.starts_with("transformer.h.0."))
            .cloned()
            .collect();
        for k in layer0 {
            let v = t.remove(&k).unwrap();
            t.insert(k.replace("transformer.h.0.", "transformer.h.2."), v);
        }
    });
    assert!(matches!(
        load(&path),
        CheckpointError::LayerNumbering { .. }
    ));

    // A position table that is not the sinusoidal one.
    let path = edited_safetensors(&dir, |t| {
        t.insert(
            "transformer.embedding.pe".into(),
            (vec![1, 16, 16], vec![0.5; 256]),
        );
    });
    let err = load(&path);
    assert!(
        matches!(&err, CheckpointError::BufferMismatch { name, .. } if name == "transformer.embedding.pe"),
        "{err}"
    );

    // Not a checkpoint at all.
    let junk = dir.join("junk.pt");
    std::fs::write(&junk, b"definitely not a checkpoint").unwrap();
    assert!(matches!(load(&junk), CheckpointError::Unreadable { .. }));
    assert!(matches!(
        load_reference(&dir.join("missing.pt"), &opts, &Device::default()),
        Err(ModelError::Io { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

//! Loading checkpoints of the reference PyTorch benchmark (Feng et al. 2023,
//! `guyuntian/CoT_benchmark`) into dpcot's standard model.
//!
//! The reference model is a minGPT-style decoder saved with `torch.save(model.state_dict())`
//! (`.pt`); the same tensors in a safetensors file load too. Both go through burn's own stores
//! (`burn::store::PytorchStore`, `SafetensorsStore`) and its PyTorch adapter, which transposes
//! linear weights from PyTorch's `[out, in]` to burn's `[in, out]`. Every tensor name is mapped
//! explicitly ([`parameter_map`]); a missing, unexpected or mis-shaped tensor is an error that
//! names it.
//!
//! | reference (PyTorch) | dpcot |
//! | --- | --- |
//! | `transformer.embedding.tok_embed.weight` `[V, d]` | `token_embedding.weight` |
//! | `transformer.embedding.norm.{weight,bias}` | `embedding_norm.{gamma,beta}` |
//! | `transformer.h.{i}.ln_1.{weight,bias}` | `blocks.{i}.attention_norm` |
//! | `transformer.h.{i}.attn.c_attn.{weight,bias}` `[3d, d]` | `blocks.{i}.attention.qkv` |
//! | `transformer.h.{i}.attn.c_proj.{weight,bias}` | `blocks.{i}.attention.output` |
//! | `transformer.h.{i}.ln_2.{weight,bias}` | `blocks.{i}.mlp_norm` |
//! | `transformer.h.{i}.mlp.c_fc.{weight,bias}` `[4d, d]` | `blocks.{i}.mlp_in` |
//! | `transformer.h.{i}.mlp.c_proj.{weight,bias}` `[d, 4d]` | `blocks.{i}.mlp_out` |
//! | `transformer.ln_f.{weight,bias}` | `final_norm` |
//! | `lm_head.{weight,bias}` `[V, d]` | `head` |
//!
//! Both models split the fused projection as `[q | k | v]`, each `d` wide and head-major
//! inside (head h owns columns `h·d_head..(h+1)·d_head`), so `c_attn` maps as it is.
//!
//! The reference also saves three buffers, which are not parameters. They are checked, not
//! loaded: `transformer.embedding.pe` `[1, M, d]` must be the sinusoidal encoding dpcot
//! computes (M, the reference's `--maxlen`, bounds the sequence length it was built for);
//! `transformer.h.{i}.attn.bias` `[1, 1, M, M]` must be the causal mask; and
//! `transformer.h.{i}.attn.RPE` `[1, H, M, M]` (the ALiBi table, used only with the
//! reference's `--rpe`) gives the number of heads H, which nothing else in the file records.
//! A checkpoint trained with `--rpe` cannot be told apart from the file and is not supported:
//! dpcot's model has no ALiBi bias.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    bridge, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};
use burn::tensor::{DType, Device};
use dpcot_attention::AttentionKind;

use crate::transformer::sinusoidal_values;
use crate::{ModelConfig, ModelError, Transformer};

/// How far the checkpoint's position table may be from dpcot's sinusoids. The reference
/// computes them in float32 (`position · exp(2i · −ln(10000)/d)`), whose rounding grows with
/// the position: about 1e-4 at position 1000. A different encoding differs by O(1).
pub const POSITION_TOLERANCE: f32 = 2e-3;

/// The file formats a reference checkpoint can come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `torch.save` output: a zip archive, or the legacy pickle format.
    Pytorch,
    /// A safetensors file holding the same tensors under the same names.
    Safetensors,
}

impl CheckpointFormat {
    /// Tells the format from the file's first bytes: a safetensors file starts with the
    /// little-endian length of its JSON header, then `{`.
    pub fn detect(path: &Path) -> Result<Self, ModelError> {
        let mut head = [0u8; 9];
        let mut file = std::fs::File::open(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let read = file.read(&mut head).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(if read == 9 && head[8] == b'{' {
            CheckpointFormat::Safetensors
        } else {
            CheckpointFormat::Pytorch
        })
    }
}

/// What a reference checkpoint says about its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceArchitecture {
    /// The file format it was read from.
    pub format: CheckpointFormat,
    /// Rows of the token embedding.
    pub vocab_size: usize,
    /// Embedding (model) dimension.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// From the `RPE` buffer, when the file has it.
    pub n_heads: Option<usize>,
    /// Rows of the `pe` buffer (the reference's `--maxlen`), when the file has it.
    pub positions: Option<usize>,
}

/// Options of [`load_reference`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Number of heads, needed when the file has no `RPE` buffer; must agree with it otherwise.
    pub n_heads: Option<usize>,
    /// Longest sequence the model will see (the task's maximum length): becomes the model's
    /// `max_len` and must fit the checkpoint's position table.
    pub max_len: usize,
    /// The vocabulary size the model must have (the task's), if known.
    pub vocab_size: Option<usize>,
    /// Dropout of the returned model's config (it only acts in training).
    pub dropout: f64,
}

impl LoadOptions {
    /// Options for sequences of up to `max_len` tokens: heads and vocabulary taken from the
    /// file, dropout 0.1 (the reference's).
    pub fn new(max_len: usize) -> Self {
        Self {
            n_heads: None,
            max_len,
            vocab_size: None,
            dropout: 0.1,
        }
    }
}

/// Everything that is wrong with a checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file cannot be parsed in the detected format.
    #[error("cannot read it as a {format:?} checkpoint: {reason}")]
    Unreadable {
        /// The detected format.
        format: CheckpointFormat,
        /// The store's message.
        reason: String,
    },

    /// A parameter of the reference model is not in the file.
    #[error("tensor `{name}` is missing (expected shape {expected:?}); this is not a checkpoint of the reference model")]
    MissingTensor {
        /// Reference (PyTorch) name of the tensor.
        name: String,
        /// Its PyTorch shape.
        expected: Vec<usize>,
    },

    /// Tensors the reference model does not have.
    #[error("unexpected tensor{} {}: the reference model has no such parameter or buffer", if .names.len() > 1 { "s" } else { "" }, .names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))]
    UnexpectedTensors {
        /// Their names in the file.
        names: Vec<String>,
    },

    /// A tensor whose shape does not fit the architecture read off the file.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Reference name of the tensor.
        name: String,
        /// The PyTorch shape it must have.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },

    /// A parameter stored with a non-float dtype.
    #[error("tensor `{name}` has dtype {dtype:?}; only float tensors are weights")]
    NotFloat {
        /// Reference name of the tensor.
        name: String,
        /// Its dtype, as burn names it.
        dtype: String,
    },

    /// Block indices `transformer.h.{i}` that are not `0..n_layers`.
    #[error("the layers are numbered {found:?}, expected 0..{expected}")]
    LayerNumbering {
        /// The indices found.
        found: Vec<usize>,
        /// The number of layers.
        expected: usize,
    },

    /// The head count is neither in the file nor in [`LoadOptions::n_heads`].
    #[error("the number of heads is unknown: the file has no `transformer.h.0.attn.RPE` buffer to tell it, and none was given")]
    HeadsUnknown,

    /// [`LoadOptions::n_heads`] disagrees with the file's `RPE` buffer.
    #[error("{given} heads given, but the checkpoint has {found}")]
    HeadsMismatch {
        /// The count in the options.
        given: usize,
        /// The count in the file.
        found: usize,
    },

    /// Tensors that do not describe a model of the reference's architecture (e.g. an empty
    /// or non-matrix token embedding).
    #[error("{reason}")]
    Architecture {
        /// What does not fit.
        reason: String,
    },

    /// The checkpoint's vocabulary is not the task's.
    #[error("the checkpoint's vocabulary has {found} tokens, the task's has {expected}: the task's parameters are not those the checkpoint was trained with (the reference's: 60 edit-distance numbers, LIS range 250)")]
    VocabMismatch {
        /// The task's vocabulary size ([`LoadOptions::vocab_size`]).
        expected: usize,
        /// Rows of the checkpoint's token embedding.
        found: usize,
    },

    /// The checkpoint's position table is shorter than the task's sequences.
    #[error("the checkpoint's position table has {positions} rows (the reference model's maximum length) but the task's sequences reach {max_len} tokens")]
    TooFewPositions {
        /// Rows of the `pe` buffer.
        positions: usize,
        /// [`LoadOptions::max_len`].
        max_len: usize,
    },

    /// A buffer that does not hold what dpcot computes in its place.
    #[error("`{name}` is not {what}: largest difference {difference} at index {index}")]
    BufferMismatch {
        /// Reference name of the buffer.
        name: String,
        /// What it should be (e.g. "the causal mask").
        what: &'static str,
        /// The largest absolute difference.
        difference: f32,
        /// Flat index of that difference.
        index: usize,
    },

    /// A buffer whose values cannot be read.
    #[error("cannot read buffer `{name}`: {reason}")]
    BufferUnreadable {
        /// Reference name of the buffer.
        name: String,
        /// The store's message.
        reason: String,
    },

    /// burn rejected the renamed parameters.
    #[error("burn could not apply the weights: {reason}")]
    Apply {
        /// burn's message.
        reason: String,
    },
}

/// The reference's name of every parameter, with dpcot's name and the PyTorch shape, for a
/// model of `n_layers` layers.
pub fn parameter_map(
    vocab_size: usize,
    d_model: usize,
    n_layers: usize,
) -> Vec<(String, String, Vec<usize>)> {
    let d = d_model;
    let mut map = Vec::new();
    let mut norm = |reference: &str, dpcot: &str| {
        map.push((
            format!("{reference}.weight"),
            format!("{dpcot}.gamma"),
            vec![d],
        ));
        map.push((
            format!("{reference}.bias"),
            format!("{dpcot}.beta"),
            vec![d],
        ));
    };
    norm("transformer.embedding.norm", "embedding_norm");
    for i in 0..n_layers {
        norm(
            &format!("transformer.h.{i}.ln_1"),
            &format!("blocks.{i}.attention_norm"),
        );
        norm(
            &format!("transformer.h.{i}.ln_2"),
            &format!("blocks.{i}.mlp_norm"),
        );
    }
    norm("transformer.ln_f", "final_norm");
    let mut linear = |reference: String, dpcot: String, out: usize, input: usize| {
        map.push((
            format!("{reference}.weight"),
            format!("{dpcot}.weight"),
            vec![out, input],
        ));
        map.push((
            format!("{reference}.bias"),
            format!("{dpcot}.bias"),
            vec![out],
        ));
    };
    for i in 0..n_layers {
        let (r, b) = (format!("transformer.h.{i}"), format!("blocks.{i}"));
        linear(
            format!("{r}.attn.c_attn"),
            format!("{b}.attention.qkv"),
            3 * d,
            d,
        );
        linear(
            format!("{r}.attn.c_proj"),
            format!("{b}.attention.output"),
            d,
            d,
        );
        linear(format!("{r}.mlp.c_fc"), format!("{b}.mlp_in"), 4 * d, d);
        linear(format!("{r}.mlp.c_proj"), format!("{b}.mlp_out"), d, 4 * d);
    }
    linear("lm_head".into(), "head".into(), vocab_size, d);
    map.push((
        "transformer.embedding.tok_embed.weight".into(),
        "token_embedding.weight".into(),
        vec![vocab_size, d],
    ));
    map
}

const EMBEDDING: &str = "transformer.embedding.tok_embed.weight";
const POSITIONS: &str = "transformer.embedding.pe";

/// Every tensor of the file, by its reference name.
fn read_tensors(
    path: &Path,
    format: CheckpointFormat,
) -> Result<BTreeMap<String, PackTensor>, CheckpointError> {
    let unreadable = |reason: String| CheckpointError::Unreadable { format, reason };
    match format {
        CheckpointFormat::Pytorch => {
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
            store
                .get_all_tensors()
                .cloned()
                .map_err(|e| unreadable(e.to_string()))
        }
        CheckpointFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
            store
                .get_all_tensors()
                .cloned()
                .map_err(|e| unreadable(e.to_string()))
        }
    }
}

fn shape_of(tensor: &PackTensor) -> Vec<usize> {
    tensor.shape.to_vec()
}

/// Reads the architecture off the tensor names and shapes.
fn architecture(
    tensors: &BTreeMap<String, PackTensor>,
    format: CheckpointFormat,
) -> Result<ReferenceArchitecture, CheckpointError> {
    let embedding = tensors
        .get(EMBEDDING)
        .ok_or_else(|| CheckpointError::MissingTensor {
            name: EMBEDDING.into(),
            expected: vec![0, 0],
        })?;
    let [vocab_size, d_model] = shape_of(embedding)[..] else {
        return Err(CheckpointError::Architecture {
            reason: format!(
                "`{EMBEDDING}` has shape {:?}, expected [vocabulary, d_model]",
                shape_of(embedding)
            ),
        });
    };
    if vocab_size == 0 || d_model == 0 {
        return Err(CheckpointError::Architecture {
            reason: format!("`{EMBEDDING}` is empty: shape [{vocab_size}, {d_model}]"),
        });
    }
    let layers: BTreeSet<usize> = tensors
        .keys()
        .filter_map(|name| name.strip_prefix("transformer.h."))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect();
    let n_layers = layers.len();
    if n_layers == 0 {
        return Err(CheckpointError::MissingTensor {
            name: "transformer.h.0.ln_1.weight".into(),
            expected: vec![d_model],
        });
    }
    if layers.iter().copied().ne(0..n_layers) {
        return Err(CheckpointError::LayerNumbering {
            found: layers.into_iter().collect(),
            expected: n_layers,
        });
    }
    let n_heads = match tensors.get("transformer.h.0.attn.RPE") {
        Some(rpe) => match shape_of(rpe)[..] {
            [1, heads, _, _] if heads > 0 => Some(heads),
            _ => {
                return Err(CheckpointError::Architecture {
                    reason: format!(
                        "`transformer.h.0.attn.RPE` has shape {:?}, expected [1, heads, maxlen, maxlen]",
                        shape_of(rpe)
                    ),
                })
            }
        },
        None => None,
    };
    let positions = match tensors.get(POSITIONS) {
        Some(pe) => match shape_of(pe)[..] {
            [1, rows, d] if d == d_model => Some(rows),
            _ => {
                return Err(CheckpointError::ShapeMismatch {
                    name: POSITIONS.into(),
                    expected: vec![1, 0, d_model],
                    found: shape_of(pe),
                })
            }
        },
        None => None,
    };
    Ok(ReferenceArchitecture {
        format,
        vocab_size,
        d_model,
        n_layers,
        n_heads,
        positions,
    })
}

/// Reads a reference checkpoint's architecture without loading it.
pub fn inspect(path: &Path) -> Result<ReferenceArchitecture, ModelError> {
    let format = CheckpointFormat::detect(path)?;
    let wrap = |error| ModelError::Checkpoint {
        path: path.to_path_buf(),
        error,
    };
    let tensors = read_tensors(path, format).map_err(wrap)?;
    architecture(&tensors, format).map_err(wrap)
}

/// Float values of a tensor of the file.
fn values(name: &str, tensor: &PackTensor) -> Result<Vec<f32>, CheckpointError> {
    let unreadable = |reason: String| CheckpointError::BufferUnreadable {
        name: name.to_string(),
        reason,
    };
    let data = bridge::to_data(tensor).map_err(|e| unreadable(e.to_string()))?;
    data.try_into_vec_as::<f32>()
        .map_err(|e| unreadable(format!("{e:?}")))
}

/// Compares a buffer with what it must hold; `expected(i)` is the value at flat index i.
fn check_buffer(
    name: &str,
    tensor: &PackTensor,
    what: &'static str,
    tolerance: f32,
    expected: impl Fn(usize) -> f32,
) -> Result<(), CheckpointError> {
    let found = values(name, tensor)?;
    let worst = found
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let diff = (v - expected(i)).abs();
            (i, if diff.is_nan() { f32::INFINITY } else { diff })
        })
        .fold(None::<(usize, f32)>, |worst, (i, diff)| match worst {
            Some((_, w)) if w >= diff => worst,
            _ => Some((i, diff)),
        });
    match worst {
        Some((index, difference)) if difference > tolerance => {
            Err(CheckpointError::BufferMismatch {
                name: name.to_string(),
                what,
                difference,
                index,
            })
        }
        _ => Ok(()),
    }
}

/// Checks names, shapes and buffers, and returns the parameters renamed to dpcot's paths.
fn prepare(
    mut tensors: BTreeMap<String, PackTensor>,
    arch: &ReferenceArchitecture,
    n_heads: usize,
) -> Result<Vec<PackTensor>, CheckpointError> {
    let (d, positions) = (arch.d_model, arch.positions);
    let mut renamed = Vec::new();
    for (reference, dpcot, expected) in parameter_map(arch.vocab_size, d, arch.n_layers) {
        let mut tensor =
            tensors
                .remove(&reference)
                .ok_or_else(|| CheckpointError::MissingTensor {
                    name: reference.clone(),
                    expected: expected.clone(),
                })?;
        let found = shape_of(&tensor);
        if found != expected {
            return Err(CheckpointError::ShapeMismatch {
                name: reference,
                expected,
                found,
            });
        }
        if !tensor.dtype.is_float() {
            return Err(CheckpointError::NotFloat {
                name: reference,
                dtype: format!("{:?}", tensor.dtype),
            });
        }
        tensor.name = dpcot;
        renamed.push(tensor);
    }

    // The buffers: checked, then dropped.
    if let (Some(pe), Some(rows)) = (tensors.remove(POSITIONS), positions) {
        let table = sinusoidal_values(0, rows, d);
        check_buffer(
            POSITIONS,
            &pe,
            "dpcot's sinusoidal position encoding",
            POSITION_TOLERANCE,
            |i| table[i],
        )?;
    }
    for i in 0..arch.n_layers {
        let name = format!("transformer.h.{i}.attn.bias");
        if let Some(mask) = tensors.remove(&name) {
            let rows = match shape_of(&mask)[..] {
                [1, 1, r, c] if r == c && positions.is_none_or(|p| p == r) => r,
                _ => {
                    let m = positions.unwrap_or(0);
                    return Err(CheckpointError::ShapeMismatch {
                        name,
                        expected: vec![1, 1, m, m],
                        found: shape_of(&mask),
                    });
                }
            };
            check_buffer(&name, &mask, "the causal mask", 0.0, |k| {
                if k % rows <= k / rows {
                    1.0
                } else {
                    0.0
                }
            })?;
        }
        let name = format!("transformer.h.{i}.attn.RPE");
        if let Some(rpe) = tensors.remove(&name) {
            let found = shape_of(&rpe);
            let ok = matches!(found[..], [1, h, r, c] if h == n_heads && r == c && positions.is_none_or(|p| p == r));
            if !ok {
                let m = positions.unwrap_or(found.get(2).copied().unwrap_or(0));
                return Err(CheckpointError::ShapeMismatch {
                    name,
                    expected: vec![1, n_heads, m, m],
                    found,
                });
            }
        }
    }
    if !tensors.is_empty() {
        return Err(CheckpointError::UnexpectedTensors {
            names: tensors.into_keys().collect(),
        });
    }
    Ok(renamed)
}

/// Loads a reference checkpoint (`.pt` from `torch.save(model.state_dict())`, or safetensors)
/// into dpcot's standard (softmax) model on `device`.
pub fn load_reference(
    path: &Path,
    options: &LoadOptions,
    device: &Device,
) -> Result<(Transformer, ReferenceArchitecture), ModelError> {
    let wrap = |error| ModelError::Checkpoint {
        path: path.to_path_buf(),
        error,
    };
    let format = CheckpointFormat::detect(path)?;
    let tensors = read_tensors(path, format).map_err(wrap)?;
    let arch = architecture(&tensors, format).map_err(wrap)?;

    let n_heads = match (options.n_heads, arch.n_heads) {
        (Some(given), Some(found)) if given != found => {
            return Err(wrap(CheckpointError::HeadsMismatch { given, found }))
        }
        (_, Some(found)) => found,
        (Some(given), None) => given,
        (None, None) => return Err(wrap(CheckpointError::HeadsUnknown)),
    };
    if let Some(expected) = options.vocab_size {
        if expected != arch.vocab_size {
            return Err(wrap(CheckpointError::VocabMismatch {
                expected,
                found: arch.vocab_size,
            }));
        }
    }
    if let Some(positions) = arch.positions {
        if options.max_len > positions {
            return Err(wrap(CheckpointError::TooFewPositions {
                positions,
                max_len: options.max_len,
            }));
        }
    }

    let parameters = prepare(tensors, &arch, n_heads).map_err(wrap)?;
    let config = ModelConfig {
        vocab_size: arch.vocab_size,
        max_len: options.max_len,
        d_model: arch.d_model,
        n_layers: arch.n_layers,
        n_heads,
        dropout: options.dropout,
        attention: AttentionKind::Softmax,
    };
    let mut model = config.init(device)?;
    let expected = parameters.len();
    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)));
    let result = model.apply(parameters, None, Some(adapter), true);
    if !result.errors.is_empty()
        || !result.missing.is_empty()
        || !result.unused.is_empty()
        || result.applied.len() != expected
    {
        return Err(wrap(CheckpointError::Apply {
            reason: result.to_string(),
        }));
    }
    Ok((model, arch))
}

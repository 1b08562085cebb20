//! Training end to end: tiny models really learn, resume is bit-exact, bad inputs are errors.

use burn::optim::AdamWConfig;
use dpcot_attention::{AttentionKind, SparsePattern};
use dpcot_model::ModelConfig;
use dpcot_tasks::{DpTask, GenerateConfig, TaskSpec};
use dpcot_train::{
    checkpoint, train, Backend, DataSource, Resume, RunConfig, RunDir, TrainConfig, TrainError,
    TrainOptions,
};

/// LIS over a small number range: learnable in a few hundred steps by a d = 32 model.
fn lis4() -> TaskSpec {
    TaskSpec::Lis {
        length: 4,
        range: 16,
        window: None,
        inline_inputs: false,
    }
}

fn config(task: TaskSpec, attention: AttentionKind, steps: usize) -> RunConfig {
    let built = task.build().unwrap();
    let mut model = ModelConfig::new(built.vocab().len(), built.max_len(), 32, attention);
    model.n_layers = 2;
    model.dropout = 0.0;
    let mut train = TrainConfig::new(steps);
    train.batch_size = 32;
    train.learning_rate = 3e-3;
    train.eval_every = Some(100);
    train.eval_examples = 200;
    RunConfig {
        task,
        model,
        train,
        data: DataSource::Generated {
            train: None,
            validation: 200,
            test: 300,
            seed: 1,
            mix_smaller: false,
        },
    }
}

/// The backend under test: burn's `BURN_DEVICE` (`flex`, `ndarray`, `wgpu`, `cuda`) if set, as
/// for the other crates' tests, else the first compiled (GPUs first, then flex, then ndarray).
fn backend() -> Backend {
    match std::env::var("BURN_DEVICE") {
        Ok(name) => name.parse().unwrap(),
        Err(_) => Backend::default_compiled().expect("a backend is compiled in"),
    }
}

fn options() -> TrainOptions {
    TrainOptions {
        backend: backend(),
        resume: Resume::No,
        quiet: true,
        halt_after: None,
    }
}

/// burn's random generator is global to the process: trainings in parallel test threads would
/// draw from it under each other and their numbers would depend on the timing (a tiny sparse
/// model once missed its threshold so). Every test here trains while holding this.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TRAINING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn learns(attention: AttentionKind, layers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(lis4(), attention.clone(), 1500);
    config.model.n_layers = layers;
    config.train.target_accuracy = Some(0.97);
    let summary = train(&RunDir::new(dir.path()), &config, &options()).unwrap();
    println!("{attention:?} trained on {}", summary.backend);
    assert_eq!(summary.backend, backend());
    assert!(
        summary.eval.answer_accuracy >= 0.95 && summary.eval.headline >= 0.95,
        "{attention:?}: answer {:.3}, teacher-forced {:.3} after {} steps",
        summary.eval.answer_accuracy,
        summary.eval.headline,
        summary.steps
    );
}

#[test]
fn a_tiny_standard_model_learns_lis() {
    let _serial = one_at_a_time();
    learns(AttentionKind::Softmax, 2);
}

#[test]
fn a_tiny_linear_model_learns_lis() {
    let _serial = one_at_a_time();
    learns(
        AttentionKind::Linear {
            chunk_size: 4,
            eps: 1e-6,
        },
        2,
    );
}

#[test]
fn tiny_recurrent_models_learn_lis() {
    // The models beyond the paper, through the same training loop, checkpoints and decoding.
    for attention in [
        AttentionKind::gla(),
        AttentionKind::delta_net(),
        AttentionKind::mamba(),
    ] {
        let _serial = one_at_a_time();
        learns(attention, 2);
    }
}

#[test]
fn a_tiny_sparse_model_learns_lis() {
    let _serial = one_at_a_time();
    // Block size ⌈√12⌉ = 4: a query sees its own block and one summary position per earlier
    // block, so the inputs reach the dp positions only through summaries, layer after layer.
    // Two layers are not enough here (73% after 1500 steps); three are.
    learns(
        AttentionKind::Sparse {
            block_size: None,
            summary_width: 1,
            pattern: SparsePattern::Fixed,
        },
        3,
    );
}

#[test]
fn a_run_directory_is_not_overwritten_and_resume_refuses_another_config() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let config = config(lis4(), AttentionKind::Softmax, 10);
    train(&RunDir::new(dir.path()), &config, &options()).unwrap();
    let again = train(&RunDir::new(dir.path()), &config, &options()).unwrap_err();
    assert!(
        matches!(&again, TrainError::RunExists { dir: d } if d == dir.path()),
        "{again:?}"
    );
    assert!(
        !again.to_string().contains("--"),
        "a library error names no command-line flag: {again}"
    );

    let mut other = config.clone();
    other.model.d_model = 64;
    let err = train(
        &RunDir::new(dir.path()),
        &other,
        &TrainOptions {
            resume: Resume::Checkpoint,
            ..options()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, TrainError::CheckpointMismatch { .. }),
        "{err}"
    );
}

fn resumed() -> TrainOptions {
    TrainOptions {
        resume: Resume::Checkpoint,
        ..options()
    }
}

#[test]
fn a_finished_run_logs_its_final_evaluations_once_and_resuming_it_changes_nothing() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let config = config(lis4(), AttentionKind::Softmax, 10);
    let summary = train(&run, &config, &options()).unwrap();
    let metrics = std::fs::read_to_string(run.metrics()).unwrap();
    let evals_at_end = |text: &str, split: &str| {
        text.lines()
            .filter(|l| {
                l.contains("\"kind\":\"eval\"") && l.contains(&format!("\"split\":\"{split}\""))
            })
            .filter(|l| l.contains(&format!("\"step\":{},", summary.steps)))
            .count()
    };
    // The last validation during training is the final one: logged once, not twice.
    assert_eq!(evals_at_end(&metrics, "validation"), 1, "{metrics}");
    assert_eq!(evals_at_end(&metrics, "test"), 1, "{metrics}");

    // Once appended another final evaluation per resume.
    for _ in 0..2 {
        let again = train(&run, &config, &resumed()).unwrap();
        assert_eq!(again.steps, summary.steps);
        assert_eq!(std::fs::read_to_string(run.metrics()).unwrap(), metrics);
    }

    // Killed after its last checkpoint, before its summary: the final evaluations are
    // written again, once.
    std::fs::remove_file(run.summary()).unwrap();
    let again = train(&run, &config, &resumed()).unwrap();
    assert_eq!(again.eval.headline, summary.eval.headline);
    let rewritten = std::fs::read_to_string(run.metrics()).unwrap();
    assert_eq!(evals_at_end(&rewritten, "validation"), 1, "{rewritten}");
    assert_eq!(evals_at_end(&rewritten, "test"), 1, "{rewritten}");
    assert_eq!(rewritten.lines().count(), metrics.lines().count());
}

#[test]
fn resuming_without_a_checkpoint_is_refused_and_changes_nothing() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let config = config(lis4(), AttentionKind::Softmax, 10);
    train(&run, &config, &options()).unwrap();
    std::fs::remove_file(run.checkpoint()).unwrap();
    std::fs::remove_file(run.summary()).unwrap();
    let metrics = std::fs::read(run.metrics()).unwrap();
    // Once this retrained from step 0 and emptied the metrics.
    let err = train(&run, &config, &resumed()).unwrap_err();
    assert!(
        matches!(&err, TrainError::NothingToResume { dir: d } if d == dir.path()),
        "{err}"
    );
    assert_eq!(std::fs::read(run.metrics()).unwrap(), metrics);
    assert!(!run.checkpoint().exists());

    // A sweep's worker resumes if it can and otherwise starts the run again.
    let summary = train(
        &run,
        &config,
        &TrainOptions {
            resume: Resume::IfAny,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(summary.steps, 10);
}

#[test]
fn a_run_being_trained_is_not_trained_by_a_second_process() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let config = config(lis4(), AttentionKind::Softmax, 10);
    let held = run.lock().unwrap();
    for resume in [Resume::No, Resume::IfAny] {
        let err = train(
            &run,
            &config,
            &TrainOptions {
                resume,
                ..options()
            },
        )
        .unwrap_err();
        assert!(matches!(err, TrainError::RunBusy { .. }), "{err}");
    }
    assert!(!run.config().exists() && !run.metrics().exists());
    drop(held);
    train(&run, &config, &options()).unwrap();
}

#[test]
fn corrupt_or_foreign_checkpoints_are_clear_errors() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let config = config(lis4(), AttentionKind::Softmax, 10);
    train(&RunDir::new(dir.path()), &config, &options()).unwrap();
    let path = RunDir::new(dir.path()).checkpoint();
    let good = std::fs::read(&path).unwrap();
    let device = backend().device().unwrap();
    let load = |model: &ModelConfig| {
        checkpoint::load(&path, model, &device, AdamWConfig::new().init()).map(|_| ())
    };

    let mut flipped = good.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0xff;
    std::fs::write(&path, &flipped).unwrap();
    let err = load(&config.model).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");

    // The header is checksummed too: a step edited in place (same length) is refused, where
    // it once resumed the run at the wrong step.
    let text = String::from_utf8_lossy(&good).into_owned();
    let at = text
        .find("\"step\":10")
        .expect("the header records step 10");
    let mut edited = good.clone();
    edited[at + 8] = b'2';
    std::fs::write(&path, &edited).unwrap();
    let err = load(&config.model).unwrap_err();
    assert!(err.to_string().contains("header checksum"), "{err}");

    let mut old_format = good.clone();
    old_format[7] = b'1';
    std::fs::write(&path, &old_format).unwrap();
    let err = load(&config.model).unwrap_err();
    assert!(err.to_string().contains("earlier dpcot"), "{err}");

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert!(matches!(
        load(&config.model),
        Err(TrainError::Corrupt { .. })
    ));
    std::fs::write(&path, b"not a checkpoint").unwrap();
    assert!(load(&config.model)
        .unwrap_err()
        .to_string()
        .contains("magic"));

    std::fs::write(&path, &good).unwrap();
    let mut other = config.model.clone();
    other.n_layers = 3;
    assert!(matches!(
        load(&other),
        Err(TrainError::CheckpointMismatch { .. })
    ));
    load(&config.model).unwrap();
}

#[test]
fn a_dataset_of_another_task_is_refused() {
    let _serial = one_at_a_time();
    let data = tempfile::tempdir().unwrap();
    let (train_set, test_set) = dpcot_tasks::generate(
        &GenerateConfig {
            task: lis4(),
            train: 50,
            test: 10,
            seed: 1,
            mix_smaller: false,
        },
        |_| {},
    )
    .unwrap();
    dpcot_tasks::dataset::write_dir(
        data.path(),
        &train_set,
        &test_set,
        dpcot_tasks::dataset::Existing::Refuse,
    )
    .unwrap();

    let run = tempfile::tempdir().unwrap();
    let mut config = config(
        TaskSpec::Lis {
            length: 5,
            range: 16,
            window: None,
            inline_inputs: false,
        },
        AttentionKind::Softmax,
        10,
    );
    config.data = DataSource::Directory {
        path: data.path().to_path_buf(),
        validation: 5,
    };
    let err = train(&RunDir::new(run.path()), &config, &options()).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Task(dpcot_tasks::TaskError::DatasetMismatch { .. })
        ),
        "{err}"
    );
}

#[test]
fn a_diverging_run_stops_with_a_non_finite_loss_error() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(lis4(), AttentionKind::Softmax, 40);
    // Weights of ~1e30 after one update overflow f32 in the next forward.
    config.train.learning_rate = 1e30;
    config.train.log_every = 4;
    let err = train(&RunDir::new(dir.path()), &config, &options()).unwrap_err();
    match err {
        // The loss is read (and checked) at logging steps only, so the step is one of them.
        TrainError::NonFiniteLoss { step, value } => {
            assert!(
                !value.is_finite() && step < 40 && (step + 1) % 4 == 0,
                "{step}: {value}"
            );
        }
        other => panic!("expected a non-finite loss, got: {other}"),
    }
}

#[test]
fn data_the_task_cannot_supply_is_refused_before_the_run_directory_is_written() {
    let _serial = one_at_a_time();
    // Arithmetic over Z_5 with one operator has 100 problems: 300 test examples drawn with
    // repeats cover them all, so no validation example is left.
    let task = TaskSpec::Arithmetic {
        operators: 1,
        modulus: 5,
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let err = train(
        &RunDir::new(&run),
        &config(task, AttentionKind::Softmax, 10),
        &options(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Task(dpcot_tasks::TaskError::SpaceExhausted {
                split: "validation",
                ..
            })
        ),
        "{err}"
    );
    assert!(!run.exists(), "a failed start leaves nothing behind");

    let mut mixed = config(lis4(), AttentionKind::Softmax, 10);
    mixed.data = DataSource::Generated {
        train: None,
        validation: 10,
        test: 10,
        seed: 1,
        mix_smaller: true,
    };
    let err = train(&RunDir::new(&run), &mixed, &options()).unwrap_err();
    assert!(err.to_string().contains("mix_smaller"), "{err}");
    assert!(!run.exists());
}

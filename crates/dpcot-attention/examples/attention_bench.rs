//! Wall-clock benchmark of the attention kernels (head level: q, k, v already projected).
//!
//! Measures, per variant, the parallel forward and forward+backward at L = 256…4096 and the
//! per-token decode step at positions 128…4096, with 4 heads of width 32 and batch 1, and prints
//! ratios to softmax measured in the same run plus the crossover length.
//!
//! ```text
//! cargo run -p dpcot-attention --example attention_bench             # full run
//! cargo run -p dpcot-attention --example attention_bench -- --quick  # fewer repetitions
//! ```
//! `ATTENTION_BENCH_QUICK=1` is equivalent to `--quick`.

use std::time::{Duration, Instant};

use dpcot_attention::burn::tensor::module::attention;
use dpcot_attention::burn::tensor::ops::AttentionModuleOptions;
use dpcot_attention::burn::tensor::{Device, Distribution, Tensor};
use dpcot_attention::flops;
use dpcot_attention::{
    default_block_size, AttentionKernel, LinearParams, SlidingWindowParams, SparseParams,
    SparsePattern,
};

const HEADS: usize = 4;
const D_HEAD: usize = 32;
const LENGTHS: [usize; 5] = [256, 512, 1024, 2048, 4096];
const POSITIONS: [usize; 6] = [128, 256, 512, 1024, 2048, 4096];
const WINDOW: usize = 64;
const CHUNK: usize = 64;

struct Variant {
    name: &'static str,
    kernel: fn(usize) -> AttentionKernel,
}

fn variants() -> Vec<Variant> {
    fn sparse(l: usize, pattern: SparsePattern) -> AttentionKernel {
        match SparseParams::new(default_block_size(l), 1, pattern) {
            Ok(p) => AttentionKernel::Sparse(p),
            Err(e) => panic!("benchmark parameters are valid: {e}"),
        }
    }
    vec![
        Variant {
            name: "softmax",
            kernel: |_| AttentionKernel::Softmax,
        },
        Variant {
            name: "sparse-fixed",
            kernel: |l| sparse(l, SparsePattern::Fixed),
        },
        Variant {
            name: "sparse-strided",
            kernel: |l| sparse(l, SparsePattern::Strided),
        },
        Variant {
            name: "linear",
            kernel: |_| match LinearParams::new(CHUNK, 1e-6) {
                Ok(p) => AttentionKernel::Linear(p),
                Err(e) => panic!("benchmark parameters are valid: {e}"),
            },
        },
        Variant {
            name: "sliding-window",
            kernel: |_| match SlidingWindowParams::new(WINDOW) {
                Ok(p) => AttentionKernel::SlidingWindow(p),
                Err(e) => panic!("benchmark parameters are valid: {e}"),
            },
        },
    ]
}

struct Settings {
    reps: usize,
    max_total: Duration,
    decode_window: usize,
}

fn settings() -> Settings {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("ATTENTION_BENCH_QUICK").is_ok_and(|v| v != "0");
    if quick {
        Settings {
            reps: 3,
            max_total: Duration::from_secs(2),
            decode_window: 8,
        }
    } else {
        Settings {
            reps: 10,
            max_total: Duration::from_secs(8),
            decode_window: 32,
        }
    }
}

/// Median of up to `reps` runs (fewer if they exceed the time budget), after one warm-up.
fn time(settings: &Settings, device: &Device, mut run: impl FnMut()) -> Duration {
    run();
    sync(device);
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < settings.reps
        && (samples.len() < 2 || start.elapsed() < settings.max_total)
    {
        let t = Instant::now();
        run();
        sync(device);
        samples.push(t.elapsed());
    }
    median(samples)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn sync(device: &Device) {
    if let Err(e) = device.sync() {
        panic!("device sync failed: {e:?}");
    }
}

fn inputs(l: usize, device: &Device) -> [Tensor<4>; 3] {
    [0, 1, 2].map(|_| Tensor::random([1, HEADS, l, D_HEAD], Distribution::Default, device))
}

/// burn's own causal attention op: a fused (flash-style) kernel on flex without autodiff, a
/// decomposition into tensor ops under autodiff. Shown as a reference for the dense baseline;
/// its FLOPs are not ours to count (it may skip fully masked tiles).
fn burn_fused(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    attention(q, k, v, None, None, options)
}

type Forward<'a> = dyn Fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4> + 'a;

fn forward_time(forward: &Forward<'_>, l: usize, settings: &Settings, device: &Device) -> Duration {
    let [q, k, v] = inputs(l, device);
    time(settings, device, || {
        let out = forward(q.clone(), k.clone(), v.clone());
        let _checksum: f32 = out.sum().into_scalar();
    })
}

fn backward_time(
    forward: &Forward<'_>,
    l: usize,
    settings: &Settings,
    device: &Device,
) -> Duration {
    let autodiff = device.clone().autodiff();
    let [q, k, v] = inputs(l, &autodiff).map(|x| x.require_grad());
    time(settings, &autodiff, || {
        let grads = forward(q.clone(), k.clone(), v.clone()).sum().backward();
        drop(q.grad(&grads));
    })
}

/// Median per-token step time over `decode_window` steps starting at each position.
fn decode_times(kernel: &AttentionKernel, settings: &Settings, device: &Device) -> Vec<Duration> {
    let last = POSITIONS[POSITIONS.len() - 1] + settings.decode_window;
    let mut cache = kernel.new_cache(1, HEADS, D_HEAD, last, device);
    let token = || Tensor::<4>::random([1, HEADS, 1, D_HEAD], Distribution::Default, device);
    let mut per_step = Vec::with_capacity(last);
    for _ in 0..last {
        let (q, k, v) = (token(), token(), token());
        sync(device);
        let t = Instant::now();
        match kernel.step(q, k, v, &mut cache) {
            Ok(out) => drop(out),
            Err(e) => panic!("cache built for this kernel: {e}"),
        }
        sync(device);
        per_step.push(t.elapsed());
    }
    POSITIONS
        .iter()
        .map(|&p| median(per_step[p..p + settings.decode_window].to_vec()))
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn ratio(x: Duration, softmax: Duration) -> String {
    format!("{:.2}", x.as_secs_f64() / softmax.as_secs_f64())
}

/// Smallest grid length from which on the variant is faster than softmax, if any.
fn crossover(times: &[Duration], softmax: &[Duration], grid: &[usize]) -> String {
    (0..grid.len())
        .find(|&i| (i..grid.len()).all(|j| times[j] < softmax[j]))
        .map_or_else(|| "none".into(), |i| grid[i].to_string())
}

fn print_table(
    title: &str,
    grid_name: &str,
    grid: &[usize],
    names: &[&str],
    times: &[Vec<Duration>],
    fmt: fn(Duration) -> String,
    unit: &str,
) {
    println!("\n### {title}\n");
    let header: Vec<String> = grid.iter().map(|g| format!("{grid_name}={g}")).collect();
    println!(
        "| variant | {} | crossover vs softmax |",
        header.join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(grid.len()));
    for (name, row) in names.iter().zip(times) {
        let cells: Vec<String> = row
            .iter()
            .zip(&times[0])
            .map(|(&t, &s)| format!("{} {unit} ({}×)", fmt(t), ratio(t, s)))
            .collect();
        println!(
            "| {name} | {} | {} |",
            cells.join(" | "),
            crossover(row, &times[0], grid)
        );
    }
}

fn main() {
    let settings = settings();
    let device = Device::default();
    let variants = variants();
    let names: Vec<&str> = variants.iter().map(|v| v.name).collect();
    println!(
        "# attention kernels: batch 1, {HEADS} heads, d_head {D_HEAD}; sparse B = ⌈√L⌉ (c = 1), \
         linear C = {CHUNK}, sliding w = {WINDOW}; {} reps (median)",
        settings.reps
    );
    println!("# cells: time (ratio to softmax in this run); device {device:?}");

    let mut forward = Vec::new();
    let mut backward = Vec::new();
    let mut gflop = Vec::new();
    for v in &variants {
        let mut f = Vec::new();
        let mut b = Vec::new();
        let mut g = Vec::new();
        for &l in &LENGTHS {
            let kernel = (v.kernel)(l);
            let run = |q, k, v| kernel.forward(q, k, v);
            f.push(forward_time(&run, l, &settings, &device));
            b.push(backward_time(&run, l, &settings, &device));
            g.push(HEADS as u64 * flops::kernel_forward(&kernel, l, D_HEAD));
            eprintln!(
                "{} L={l}: forward {} ms, forward+backward {} ms",
                v.name,
                ms(f[f.len() - 1]),
                ms(b[b.len() - 1])
            );
        }
        forward.push(f);
        backward.push(b);
        gflop.push(g);
    }
    let fused_forward = LENGTHS
        .iter()
        .map(|&l| forward_time(&burn_fused, l, &settings, &device))
        .collect();
    let fused_backward = LENGTHS
        .iter()
        .map(|&l| backward_time(&burn_fused, l, &settings, &device))
        .collect();
    let mut table_names = names.clone();
    table_names.push("(burn fused causal attention)");
    forward.push(fused_forward);
    backward.push(fused_backward);
    print_table(
        "Forward (ms)",
        "L",
        &LENGTHS,
        &table_names,
        &forward,
        ms,
        "ms",
    );
    print_table(
        "Forward + backward (ms)",
        "L",
        &LENGTHS,
        &table_names,
        &backward,
        ms,
        "ms",
    );

    println!("\n### Forward FLOPs (flops::kernel_forward × heads), ratio to softmax\n");
    println!(
        "| variant | {} |",
        LENGTHS.map(|l| format!("L={l}")).join(" | ")
    );
    println!("|---|{}", "---|".repeat(LENGTHS.len()));
    for (name, row) in names.iter().zip(&gflop) {
        let cells: Vec<String> = row
            .iter()
            .zip(&gflop[0])
            .map(|(&f, &s)| format!("{:.3} G ({:.3}×)", f as f64 / 1e9, f as f64 / s as f64))
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }

    // Decode uses the block size of the longest benchmarked context.
    let decode: Vec<Vec<Duration>> = variants
        .iter()
        .map(|v| {
            decode_times(
                &(v.kernel)(POSITIONS[POSITIONS.len() - 1]),
                &settings,
                &device,
            )
        })
        .collect();
    print_table(
        "Decode step (µs per token, at position t)",
        "t",
        &POSITIONS,
        &names,
        &decode,
        us,
        "µs",
    );
}

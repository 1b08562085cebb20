//! # dpcot-analysis
//!
//! The experiments on top of dpcot-train.
//!
//! Not yet built (see the reproduce issue). Intended modules:
//! - `profile`: the smoke / quick / paper experiment profiles;
//! - `sweep`: resumable, shardable sweeps with one atomic JSON record per finished run;
//! - `search`: the minimal embedding dimension reaching an accuracy threshold, by bisection;
//! - `compute`: FLOPs, decode time and memory at equal accuracy, efficient/standard ratios;
//! - `report`: heatmaps and curves (plotters), CSV tables and `report.md` beside the paper's numbers.

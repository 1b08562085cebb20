//! Integration tests of dpcot-attention, in one binary to link burn once.
//!
//! Tolerances (f32): outputs and gradients of an efficient kernel must match the dense
//! reference to a max abs difference of `TOL = 1e-4` (gradients relative to their scale, see
//! `common::assert_close`). Inputs are O(1), so any wrong mask entry moves outputs by ~1e-2 or
//! more; `negative_controls` checks that an off-by-one pattern is indeed caught.

mod backend;
mod common;
mod config;
mod decoding;
mod dropout;
mod equivalence;
mod flops;
mod fused;
mod gradients;
mod negative_controls;
mod patterns;
mod recurrent;

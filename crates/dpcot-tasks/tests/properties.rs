//! Property tests over generated examples of every task, the local variants included.

use dpcot_tasks::arithmetic::Arithmetic;
use dpcot_tasks::edit_distance::{EditDistance, StringPair};
use dpcot_tasks::lis::Lis;
use dpcot_tasks::{DpTask, Task, TaskSpec};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn any_task() -> impl Strategy<Value = Task> {
    prop_oneof![
        (1usize..=8, prop::sample::select(vec![5u32, 7, 11, 13])).prop_map(|(n, p)| {
            TaskSpec::Arithmetic {
                operators: n,
                modulus: p,
            }
        }),
        (1usize..=24, prop::option::of(1usize..=6)).prop_map(|(n, window)| TaskSpec::Lis {
            length: n,
            range: Lis::default_range(n),
            window,
            inline_inputs: false,
        }),
        (1usize..=10, prop::option::of(0usize..=4)).prop_map(|(n, band)| TaskSpec::EditDistance {
            length: n,
            numbers: EditDistance::default_numbers(n, band),
            band
        }),
    ]
    .prop_map(|spec| spec.build().expect("valid spec"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_examples_pass_the_checker(task in any_task(), seed in any::<u64>()) {
        let example = task.generate(&mut ChaCha8Rng::seed_from_u64(seed));
        prop_assert!(example.tokens.len() <= task.max_len(), "{} > {}", example.tokens.len(), task.max_len());
        task.vocab().validate(&task.name(), &example.tokens).unwrap();
        let report = task.check(example.prompt(), example.completion()).unwrap();
        prop_assert!(report.is_correct() && report.answer_correct && report.well_formed, "{report:?}");
        let steps = task.steps_of(&example).unwrap();
        prop_assert_eq!(steps.len(), example.completion().len());
        prop_assert_eq!(steps.last().copied(), Some(report.steps - 1));
    }

    #[test]
    fn detokenize_then_tokenize_is_identity(task in any_task(), seed in any::<u64>()) {
        let example = task.generate(&mut ChaCha8Rng::seed_from_u64(seed));
        let text = task.vocab().decode(&example.tokens);
        prop_assert_eq!(task.parse_example(&text).unwrap(), example.clone());
        // The reference files leave `<eos>` out; the parser appends it.
        let without_eos = task.vocab().decode(&example.tokens[..example.tokens.len() - 1]);
        prop_assert_eq!(task.parse_example(&without_eos).unwrap(), example);
    }

    #[test]
    fn one_corrupted_token_is_found_at_its_step(
        task in any_task(),
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        with in any::<prop::sample::Index>(),
    ) {
        let example = task.generate(&mut ChaCha8Rng::seed_from_u64(seed));
        let steps = task.steps_of(&example).unwrap();
        let mut completion = example.completion().to_vec();
        let k = at.index(completion.len());
        let original = completion[k];
        // Any other token of the vocabulary (padding included).
        let replacement = with.index(task.vocab().len() - 1) as u32;
        completion[k] = if replacement >= original { replacement + 1 } else { replacement };

        let report = task.check(example.prompt(), &completion).unwrap();
        let found = report.first_wrong.map(|w| w.step);
        match &task {
            Task::Arithmetic(a) => {
                // Several reductions can be right; a change that keeps the value of the step may
                // be another right reduction, but one that changes it never is.
                let segment = |c: &[u32]| -> Vec<u32> {
                    c.split(|&t| t == task.separator() || t == dpcot_tasks::vocab::EOS)
                        .nth(steps[k]).unwrap_or(&[]).to_vec()
                };
                let value_changed = a.evaluate(&segment(&completion)) != a.evaluate(&segment(example.completion()));
                let structural = !task.vocab().word(original).chars().all(|c| c.is_ascii_digit() || "+-*/".contains(c));
                if value_changed || structural {
                    prop_assert_eq!(found, Some(steps[k]), "{:?}", report);
                } else {
                    prop_assert!(found.is_none_or(|s| s >= steps[k]), "{:?}", report);
                }
            }
            _ => prop_assert_eq!(found, Some(steps[k]), "{:?}", report),
        }
    }

    #[test]
    fn arithmetic_answer_is_the_value_of_the_expression(n in 1usize..=10, seed in any::<u64>()) {
        let task = Arithmetic::new(n, 11).unwrap();
        let example = task.generate(&mut ChaCha8Rng::seed_from_u64(seed));
        let expression = &example.prompt()[..example.prompt_len - 1];
        let answer = example.tokens[example.tokens.len() - 2];
        prop_assert_eq!(task.evaluate(expression), task.vocab().word(answer).parse::<u32>().ok());
        // Every step of the chain keeps the value.
        let completion = example.completion();
        for segment in completion[..completion.len() - 1].split(|&t| t == task.separator()) {
            prop_assert_eq!(task.evaluate(segment), task.evaluate(expression));
        }
    }

    #[test]
    fn lis_solver_agrees_with_brute_force(
        input in prop::collection::vec(5u32..12, 1..=9),
        window in prop::option::of(1usize..=4),
    ) {
        let task = Lis::new(input.len(), 20, window).unwrap();
        prop_assert_eq!(task.solve(&input), brute_force_lis(&input, window));
    }

    #[test]
    fn edit_distance_solver_agrees_with_recursion(
        s1 in prop::collection::vec(0u8..3, 1..=4),
        extra in prop::collection::vec(0u8..3, 0..=2),
        swap in prop::collection::vec(0u8..3, 0..=4),
        band in prop::option::of(0usize..=3),
    ) {
        // s2 has |s1| to |s1| + 2 letters.
        let s2: Vec<u8> = swap.iter().chain(&extra).copied().chain(s1.iter().copied()).take(s1.len() + extra.len()).collect();
        let task = EditDistance::new(s1.len().max(1), 200, band).unwrap();
        let table = task.solve(&StringPair { s1: s1.clone(), s2: s2.clone() });
        for i in 1..=s1.len() {
            for j in 1..=s2.len() {
                prop_assert_eq!(table[i - 1][j - 1], recursive_distance(&s1[..i], &s2[..j], band), "cell ({}, {})", i, j);
            }
        }
    }

    /// The locality bound: every DP state of a local variant reads only states at most m
    /// (windowed LIS) or 2w + 2 (banded edit distance) chain positions back.
    #[test]
    fn local_variants_read_only_recent_steps(seed in any::<u64>(), n in 2usize..=12, m in 1usize..=4) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lis = Lis::new(n, Lis::default_range(n), Some(m)).unwrap();
        let example = lis.generate(&mut rng);
        let number = |t: u32| lis.vocab().word(t).parse::<u32>().unwrap();
        let input: Vec<u32> = example.prompt()[..n].iter().map(|&t| number(t)).collect();
        // dp_i sits at chain position i; it must follow from the input and the m chain
        // positions before it alone.
        let chain: Vec<u32> = example.completion()[..n].iter().map(|&t| number(t)).collect();
        for i in 0..n {
            let from_window = 1 + (i.saturating_sub(m)..i)
                .filter(|&j| input[j] < input[i])
                .map(|j| chain[j])
                .max()
                .unwrap_or(0);
            prop_assert_eq!(chain[i], from_window, "dp_{} is not a function of the last {} steps", i, m);
        }

        // With inline inputs, step i is `a_i dp_i r_i` at chain positions 3i, 3i + 1, 3i + 2:
        // everything it needs is found in the chain, at most 3m + 1 tokens back.
        let inline = Lis::new(n, Lis::default_range(n), Some(m)).unwrap().with_inline_inputs(true).unwrap();
        let example = inline.generate(&mut rng);
        let chain: Vec<u32> = example.completion()[..3 * n].iter().map(|&t| number(t)).collect();
        let prompt: Vec<u32> = example.prompt()[..n].iter().map(|&t| number(t)).collect();
        let read = |at: usize, from: usize| {
            assert!(at < from && from - at <= 3 * m + 1, "position {} reads {} back", from, from - at);
            chain[at]
        };
        for i in 0..n {
            prop_assert_eq!(chain[3 * i], prompt[i], "a_{} is given from the prompt", i);
            prop_assert_eq!(inline.given(example.prompt(), 3 * i), Some(example.completion()[3 * i]));
            let dp_at = 3 * i + 1;
            let a_i = read(3 * i, dp_at);
            let dp = 1 + (i.saturating_sub(m)..i)
                .filter(|&j| read(3 * j, dp_at) < a_i)
                .map(|j| read(3 * j + 1, dp_at))
                .max()
                .unwrap_or(0);
            prop_assert_eq!(chain[dp_at], dp, "dp_{}", i);
            let r_at = 3 * i + 2;
            let before = if i == 0 { 0 } else { read(3 * i - 1, r_at) };
            prop_assert_eq!(chain[r_at], before.max(read(dp_at, r_at)), "r_{}", i);
        }
        let answer = number(example.completion()[3 * n + 1]);
        prop_assert_eq!(answer, chain[3 * n - 1], "the answer is r_n, two tokens back");
        prop_assert_eq!(example.tokens.len(), inline.max_len());

        let w = m - 1;
        let ed = EditDistance::new(n, EditDistance::default_numbers(n, Some(w)), Some(w)).unwrap();
        let example = ed.generate(&mut rng);
        let pair = parse_pair(&ed, &example);
        // Chain position of every in-band cell (i, j), 1-based, commas included.
        let mut position = std::collections::HashMap::new();
        let mut at = 0usize;
        for i in 1..=pair.s1.len() {
            for j in 1..=pair.s2.len() {
                if i.abs_diff(j) <= w {
                    position.insert((i, j), at);
                    at += 1;
                }
            }
            at += 1; // the comma ending the row
        }
        prop_assert_eq!(at + 3, example.completion().len(), "the layout above is the chain's");
        let value = |p: usize| ed.vocab().word(example.completion()[p]).parse::<u32>().unwrap();
        for (&(i, j), &p) in &position {
            // The cell's value from the cells it reads, found at their chain positions (the
            // boundary row and column are not in the chain: they are i and j).
            let read = |cell: (usize, usize)| match cell {
                (0, j) => (j <= w).then_some(j as u32),
                (i, 0) => (i <= w).then_some(i as u32),
                cell => position.get(&cell).map(|&q| {
                    assert!(p - q <= 2 * w + 2, "cell {:?} reads {:?} {} back", (i, j), cell, p - q);
                    value(q)
                }),
            };
            let substitute = if pair.s1[i - 1] == pair.s2[j - 1] { 0 } else { 3 };
            let expected = [
                read((i - 1, j)).map(|d| d + 2),
                read((i, j - 1)).map(|d| d + 2),
                read((i - 1, j - 1)).map(|d| d + substitute),
            ]
            .into_iter()
            .flatten()
            .min();
            prop_assert_eq!(Some(value(p)), expected, "cell {:?}", (i, j));
        }
    }
}

fn parse_pair(task: &EditDistance, example: &dpcot_tasks::Example) -> StringPair {
    let text = task
        .vocab()
        .decode(&example.prompt()[..example.prompt_len - 1]);
    let (a, b) = text.split_once(" | ").unwrap();
    let letters = |s: &str| {
        s.split(' ')
            .filter(|w| !w.is_empty())
            .map(|w| w.as_bytes()[0] - b'a')
            .collect()
    };
    StringPair {
        s1: letters(a),
        s2: letters(b),
    }
}

/// dp_i by enumerating every subset of positions ending at i.
fn brute_force_lis(input: &[u32], window: Option<usize>) -> Vec<u32> {
    let n = input.len();
    (0..n)
        .map(|i| {
            (0u32..1 << n)
                .filter(|mask| mask >> i == 1)
                .filter_map(|mask| {
                    let chosen: Vec<usize> = (0..n).filter(|&b| mask >> b & 1 == 1).collect();
                    chosen
                        .windows(2)
                        .all(|w| {
                            input[w[0]] < input[w[1]] && window.is_none_or(|m| w[1] - w[0] <= m)
                        })
                        .then_some(chosen.len() as u32)
                })
                .max()
                .unwrap()
        })
        .collect()
}

/// D(i, j) by plain recursion over the last letters, with the unit-cost boundary; `None`
/// outside the band.
fn recursive_distance(s1: &[u8], s2: &[u8], band: Option<usize>) -> Option<u32> {
    let (i, j) = (s1.len(), s2.len());
    if band.is_some_and(|w| i.abs_diff(j) > w) {
        return None;
    }
    if i == 0 || j == 0 {
        return Some((i + j) as u32);
    }
    let substitute = if s1[i - 1] == s2[j - 1] { 0 } else { 3 };
    [
        recursive_distance(&s1[..i - 1], s2, band).map(|d| d + 2),
        recursive_distance(s1, &s2[..j - 1], band).map(|d| d + 2),
        recursive_distance(&s1[..i - 1], &s2[..j - 1], band).map(|d| d + substitute),
    ]
    .into_iter()
    .flatten()
    .min()
}

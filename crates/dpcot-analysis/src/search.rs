//! The minimal-dimension search: bisection over an ascending grid, assuming accuracy is
//! (nearly) monotone in the dimension.

/// The smallest index `i < n` with `passes(i)`, assuming `passes` is monotone (false then
/// true); `None` if even the largest fails. `hint` is tried first (the answer for the next
/// smaller problem size), which usually saves probes since the answer moves little.
pub fn min_passing<E>(
    n: usize,
    hint: Option<usize>,
    passes: &mut impl FnMut(usize) -> Result<bool, E>,
) -> Result<Option<usize>, E> {
    // Invariant: every index below `lo` fails; `hi` passes, or is `n` for "none known".
    let (mut lo, mut hi) = (0, n);
    let mut probe = hint.filter(|&h| h < n);
    while lo < hi {
        let mid = probe.take().unwrap_or((lo + hi) / 2);
        if passes(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok((hi < n).then_some(hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn finds_the_threshold_of_any_monotone_predicate(n in 1usize..40, t in 0usize..45, hint in prop::option::of(0usize..45)) {
            let mut probes = Vec::new();
            let found = min_passing::<()>(n, hint, &mut |i| { probes.push(i); Ok(i >= t) }).unwrap();
            prop_assert_eq!(found, (t < n).then_some(t));
            // Each index at most once, and about log2(n) + 2 probes.
            let mut unique = probes.clone();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), probes.len());
            prop_assert!(probes.len() <= (usize::BITS - n.leading_zeros()) as usize + 2, "{:?}", probes);
        }
    }

    #[test]
    fn a_right_hint_costs_two_probes() {
        let mut probes = Vec::new();
        let found = min_passing::<()>(8, Some(3), &mut |i| {
            probes.push(i);
            Ok(i >= 3)
        })
        .unwrap();
        assert_eq!(found, Some(3));
        assert_eq!(probes[0], 3);
        assert!(probes.contains(&2) && probes.len() <= 3, "{probes:?}");
    }
}

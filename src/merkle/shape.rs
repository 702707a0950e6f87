//! Which nodes of an RFC 9162 tree a root or a proof is made of, as leaf
//! ranges, computed from the sizes alone. Proof generation hashes these nodes
//! and the tile planner lists the tiles that hold them, so the two can never
//! disagree about what a proof needs.

/// A node of the tree: the subtree over the leaves `start..end`. Every node of
/// an RFC 9162 tree starts at a multiple of the smallest power of two that is
/// at least its width, which is what `perfect_parts` relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u64,
    pub end: u64,
}

/// A perfect subtree: the `2^height` leaves from `index * 2^height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Perfect {
    pub height: u32,
    pub index: u64,
}

/// The largest power of two smaller than `n` (the RFC's `k`), for `n >= 2`.
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The nodes of `PATH(index, D[0:size])` (RFC 9162 section 2.1.3.1), in proof
/// order (nearest the leaf first). Needs `index < size`.
pub(crate) fn inclusion_nodes(index: u64, size: u64) -> Vec<Span> {
    debug_assert!(index < size);
    let (mut lo, mut hi) = (0, size);
    let mut out = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            out.push(Span {
                start: lo + k,
                end: hi,
            });
            hi = lo + k;
        } else {
            out.push(Span {
                start: lo,
                end: lo + k,
            });
            lo += k;
        }
    }
    out.reverse();
    out
}

/// The nodes of `PROOF(m, D[0:n])` (RFC 9162 section 2.1.4.1), in proof order.
/// Needs `0 < m <= n`; `m == n` has none.
pub(crate) fn consistency_nodes(m: u64, n: u64) -> Vec<Span> {
    debug_assert!(0 < m && m <= n);
    let (mut lo, mut hi, mut m, mut whole_old_tree) = (0, n, m, true);
    let mut out = Vec::new();
    loop {
        if m == hi - lo {
            // SUBPROOF's `b`: the verifier knows the old root itself, so the
            // node is sent only when it is a part of the old tree.
            if !whole_old_tree {
                out.push(Span { start: lo, end: hi });
            }
            break;
        }
        let k = split(hi - lo);
        if m <= k {
            out.push(Span {
                start: lo + k,
                end: hi,
            });
            hi = lo + k;
        } else {
            out.push(Span {
                start: lo,
                end: lo + k,
            });
            m -= k;
            lo += k;
            whole_old_tree = false;
        }
    }
    out.reverse();
    out
}

/// The perfect subtrees a node is made of, largest (leftmost) first; the
/// node's hash is their hashes folded from the right (RFC 9162's MTH).
pub(crate) fn perfect_parts(span: Span) -> impl Iterator<Item = Perfect> {
    let mut start = span.start;
    std::iter::from_fn(move || {
        if start >= span.end {
            return None;
        }
        let width_log = 63 - (span.end - start).leading_zeros();
        let height = start.trailing_zeros().min(width_log);
        let part = Perfect {
            height,
            index: start >> height,
        };
        start += 1 << height;
        Some(part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(list: &[(u64, u64)]) -> Vec<Span> {
        list.iter()
            .map(|&(start, end)| Span { start, end })
            .collect()
    }

    // RFC 9162 section 2.1.5's seven-leaf example: the audit path for d0 is
    // [b, h, l] and the consistency proof from size 3 is [c, d, g, l].
    #[test]
    fn the_rfc_examples_name_the_rfc_nodes() {
        assert_eq!(inclusion_nodes(0, 7), spans(&[(1, 2), (2, 4), (4, 7)]));
        assert_eq!(inclusion_nodes(3, 7), spans(&[(2, 3), (0, 2), (4, 7)]));
        assert_eq!(inclusion_nodes(4, 7), spans(&[(5, 6), (6, 7), (0, 4)]));
        assert_eq!(inclusion_nodes(6, 7), spans(&[(4, 6), (0, 4)]));
        assert_eq!(
            consistency_nodes(3, 7),
            spans(&[(2, 3), (3, 4), (0, 2), (4, 7)])
        );
        assert_eq!(consistency_nodes(4, 7), spans(&[(4, 7)]));
        assert_eq!(consistency_nodes(6, 7), spans(&[(4, 6), (6, 7), (0, 4)]));
        assert!(consistency_nodes(7, 7).is_empty());
        assert!(inclusion_nodes(0, 1).is_empty());
    }

    #[test]
    fn perfect_parts_cover_a_node_with_aligned_powers_of_two() {
        let parts: Vec<_> = perfect_parts(Span { start: 0, end: 7 }).collect();
        assert_eq!(
            parts,
            vec![
                Perfect {
                    height: 2,
                    index: 0
                },
                Perfect {
                    height: 1,
                    index: 2
                },
                Perfect {
                    height: 0,
                    index: 6
                },
            ]
        );
        let parts: Vec<_> = perfect_parts(Span {
            start: 256,
            end: 300,
        })
        .collect();
        assert_eq!(
            parts,
            vec![
                Perfect {
                    height: 5,
                    index: 8
                },
                Perfect {
                    height: 3,
                    index: 36
                },
                Perfect {
                    height: 2,
                    index: 74
                },
            ]
        );
    }
}

//! Cuts between cache groups: a layer whose KV caches keep it above the bound (attention at long
//! contexts, where every head reads its whole cache and the chain hashes it) is cut between
//! groups of its caches, since no value boundary can cut it.
//!
//! Every value depends on some of the layer's states (transitively). A state's *cluster* is the
//! states no cut may separate from it: those an instruction that reads one of its caches (the
//! state, or the state with the step's slot appended) also depends on (a head's value cache and
//! its key cache, which made the probabilities the context reads with the values). A cut between
//! clusters so never commits a cache as a boundary value. Clusters are packed in order into
//! groups, and the layer is cut into:
//!
//! - `NAME.in`: the instructions that depend on no state (LayerNorm, the q/k/v projections), one
//!   stateless layer returning what the others read of them;
//! - `NAME.cachesK`: group `K`'s states and every instruction depending on them and on no other
//!   group, in every context bucket; its caches are committed by its own chain;
//! - `NAME.out`: the instructions that combine groups (the heads' concatenation), stateless.
//!
//! An instruction combining groups never reads a state (the clusters ensure it), so only the
//! group parts hold caches and each one's updates depend on its own caches alone. The boundary
//! values are linked by name like every other part's. A generation's caches must be committed
//! by the same chains at every step, so a stage's buckets are all cut into the groups chosen on
//! its largest bucket.

use super::{sub_layer, values_read, PartError};
use crate::backend::cost;
use std::collections::BTreeSet;
use zkc_lang::{Layer, Module, Op, Operand, ValueDef, ValueId};

/// `layer` cut between cache groups.
#[derive(Debug)]
pub(super) struct CacheCut {
    /// What depends on no state, if anything.
    pub prefix: Option<Layer>,
    /// Per group, its part.
    pub groups: Vec<Layer>,
    /// What combines groups, if anything.
    pub suffix: Option<Layer>,
}

/// A group of states, by name (the same in every bucket).
pub(super) type Group = BTreeSet<String>;

/// Per value of `layer`, the states it depends on (a bit set over state indices).
fn dependencies(layer: &Layer) -> Vec<Vec<u64>> {
    let words = layer.states.len().div_ceil(64);
    let mut deps = vec![vec![0u64; words]; layer.values.len()];
    for (k, &s) in layer.states.iter().enumerate() {
        deps[s.index()][k / 64] |= 1 << (k % 64);
    }
    for inst in &layer.insts {
        let mut of_inst = vec![0u64; words];
        for v in values_read(inst) {
            for (w, d) in of_inst.iter_mut().zip(&deps[v.index()]) {
                *w |= d;
            }
        }
        for &r in &inst.results {
            deps[r.index()].clone_from(&of_inst);
        }
    }
    deps
}

fn members(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(w, &b)| {
        (0..64)
            .filter(move |i| b >> i & 1 == 1)
            .map(move |i| w * 64 + i)
    })
}

/// Per value of `layer`, whether it is a cache: a state, or a cache with a slot appended.
fn caches(layer: &Layer) -> Vec<bool> {
    let mut cache: Vec<bool> = layer
        .values
        .iter()
        .map(|v| matches!(v.def, ValueDef::State(_)))
        .collect();
    for inst in &layer.insts {
        if let (Op::KvAppend, Some(Operand::Value(c))) = (&inst.op, inst.args.first()) {
            if cache[c.index()] {
                cache[inst.results[0].index()] = true;
            }
        }
    }
    cache
}

/// `layer`'s state clusters (see the module doc), each its state indices ascending, ordered by
/// their first state.
pub(super) fn clusters(layer: &Layer) -> Vec<Vec<usize>> {
    let deps = dependencies(layer);
    let caches = caches(layer);
    let mut parent: Vec<usize> = (0..layer.states.len()).collect();
    fn root(parent: &mut [usize], mut s: usize) -> usize {
        while parent[s] != s {
            parent[s] = parent[parent[s]];
            s = parent[s];
        }
        s
    }
    for inst in &layer.insts {
        if !values_read(inst).any(|v| caches[v.index()]) {
            continue;
        }
        let Some(&result) = inst.results.first() else {
            continue;
        };
        let mut states = members(&deps[result.index()]);
        let Some(first) = states.next() else { continue };
        for s in states {
            let (a, b) = (root(&mut parent, first), root(&mut parent, s));
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    let mut index_of_root = vec![usize::MAX; parent.len()];
    for s in 0..parent.len() {
        let r = root(&mut parent, s);
        if index_of_root[r] == usize::MAX {
            index_of_root[r] = clusters.len();
            clusters.push(Vec::new());
        }
        clusters[index_of_root[r]].push(s);
    }
    clusters
}

/// `layer`'s clusters packed in order into the fewest groups whose parts each have at most
/// `max` constraints (a cluster above it alone is a group of its own); `None` if that is one
/// group.
pub(super) fn groups(module: &Module, layer: &Layer, max: usize) -> Option<Vec<Group>> {
    let names = |cluster: &[usize]| -> Group {
        cluster
            .iter()
            .map(|&s| layer.value(layer.states[s]).name.clone())
            .collect()
    };
    let clusters: Vec<Group> = clusters(layer).iter().map(|c| names(c)).collect();
    if clusters.len() < 2 {
        return None;
    }
    // The constraints of `group`'s part, with the layer's other states as a second group.
    let part_cost = |group: &Group| -> Option<usize> {
        let rest: Group = clusters
            .iter()
            .flatten()
            .filter(|s| !group.contains(*s))
            .cloned()
            .collect();
        let groups = match rest.is_empty() {
            true => vec![group.clone()],
            false => vec![group.clone(), rest],
        };
        Some(cost::layer(module, &cut(layer, &groups)?.groups[0]).1)
    };
    let mut groups: Vec<Group> = Vec::new();
    for cluster in &clusters {
        let grown: Option<Group> = groups.last().map(|g| g.union(cluster).cloned().collect());
        match grown {
            Some(grown) if part_cost(&grown)? <= max => *groups.last_mut()? = grown,
            _ => groups.push(cluster.clone()),
        }
    }
    (groups.len() > 1).then_some(groups)
}

/// Where an instruction goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Free,
    Group(usize),
    Mixed,
}

/// `layer` cut between `groups` (every state in one), or `None` if an instruction combining
/// groups reads a cache (the groups split a cluster) or a group misses a state.
pub(super) fn cut(layer: &Layer, groups: &[Group]) -> Option<CacheCut> {
    let caches = caches(layer);
    let group_of_state: Vec<usize> = layer
        .states
        .iter()
        .map(|&s| groups.iter().position(|g| g.contains(&layer.value(s).name)))
        .collect::<Option<_>>()?;
    let deps = dependencies(layer);
    let class_of_deps = |bits: &[u64]| {
        let mut found = members(bits).map(|s| group_of_state[s]);
        match found.next() {
            None => Class::Free,
            Some(g) if found.all(|h| h == g) => Class::Group(g),
            Some(_) => Class::Mixed,
        }
    };
    let mut class = Vec::with_capacity(layer.insts.len());
    for inst in &layer.insts {
        let c = match inst.results.first() {
            Some(r) => class_of_deps(&deps[r.index()]),
            None => Class::Free,
        };
        if c == Class::Mixed && values_read(inst).any(|v| caches[v.index()]) {
            return None;
        }
        class.push(c);
    }
    let def_class = |v: ValueId| match layer.value(v).def {
        ValueDef::Input(_) => None,
        ValueDef::State(k) => Some(Class::Group(group_of_state[k])),
        ValueDef::Inst { inst, .. } => Some(class[inst]),
    };
    if layer
        .outputs
        .iter()
        .any(|&o| !matches!(layer.value(o).def, ValueDef::Inst { .. }))
    {
        return None;
    }
    let insts_of =
        |c: Class| -> Vec<usize> { (0..class.len()).filter(|&i| class[i] == c).collect() };
    // The values `insts` read that are defined outside them: layer inputs first, in order.
    let read_from_outside = |insts: &[usize], inside: Class| -> Vec<ValueId> {
        let read: BTreeSet<ValueId> = insts
            .iter()
            .flat_map(|&i| values_read(&layer.insts[i]))
            .filter(|&v| {
                !matches!(layer.value(v).def, ValueDef::State(_)) && def_class(v) != Some(inside)
            })
            .collect();
        let (inputs, others): (Vec<ValueId>, Vec<ValueId>) = read
            .into_iter()
            .partition(|&v| matches!(layer.value(v).def, ValueDef::Input(_)));
        let mut ordered: Vec<ValueId> = layer
            .inputs
            .iter()
            .copied()
            .filter(|v| inputs.contains(v))
            .collect();
        ordered.extend(others);
        ordered
    };
    // The values `c`'s instructions define that others read or the layer returns.
    let read_later = |c: Class| -> Vec<ValueId> {
        let read: BTreeSet<ValueId> = layer
            .insts
            .iter()
            .enumerate()
            .filter(|&(i, _)| class[i] != c)
            .flat_map(|(_, inst)| values_read(inst))
            .chain(layer.outputs.iter().copied())
            .filter(|&v| {
                matches!(layer.value(v).def, ValueDef::Inst { .. }) && def_class(v) == Some(c)
            })
            .collect();
        read.into_iter().collect()
    };
    let part = |c: Class, states: &[ValueId]| -> Option<Layer> {
        let insts = insts_of(c);
        (!insts.is_empty()).then(|| {
            sub_layer(
                layer,
                &read_from_outside(&insts, c),
                states,
                &insts,
                &read_later(c),
            )
        })
    };
    let groups = (0..groups.len())
        .map(|g| {
            let states: Vec<ValueId> = layer
                .states
                .iter()
                .enumerate()
                .filter(|&(k, _)| group_of_state[k] == g)
                .map(|(_, &s)| s)
                .collect();
            part(Class::Group(g), &states)
        })
        .collect::<Option<Vec<Layer>>>()?;
    Some(CacheCut {
        prefix: part(Class::Free, &[]),
        groups,
        suffix: part(Class::Mixed, &[]),
    })
}

/// `module` with every stage that has caches and whose largest bucket is above `max` cut
/// between cache groups (chosen on the largest bucket), when that makes more than one group.
pub(super) fn split(module: Module, max: usize) -> Result<Module, PartError> {
    let mut layers = Vec::with_capacity(module.layers.len());
    for stage in module.stages() {
        let bucket_layers: Vec<&Layer> = stage.layers.iter().map(|&l| &module.layers[l]).collect();
        let largest = *bucket_layers.last().expect("a stage has a layer");
        let above = !largest.states.is_empty() && cost::layer(&module, largest).1 > max;
        let Some(groups) = above.then(|| groups(&module, largest, max)).flatten() else {
            layers.extend(bucket_layers.into_iter().cloned());
            continue;
        };
        let cuts = bucket_layers
            .iter()
            .map(|l| {
                cut(l, &groups).ok_or_else(|| PartError::CacheGroups {
                    layer: stage.name.clone(),
                    context: l.context().unwrap_or(0),
                })
            })
            .collect::<Result<Vec<CacheCut>, PartError>>()?;
        let named = |part: &Layer, suffix: &str| Layer {
            name: format!("{}.{suffix}", stage.name),
            ..part.clone()
        };
        // What the groups share is one stateless layer: the same in every bucket.
        let shared = |of: fn(&CacheCut) -> &Option<Layer>, suffix: &str| {
            let first = of(&cuts[0]);
            if cuts.iter().any(|c| of(c) != first) {
                return Err(PartError::Shared {
                    layer: stage.name.clone(),
                    part: format!("{}.{suffix}", stage.name),
                });
            }
            Ok(first.as_ref().map(|p| named(p, suffix)))
        };
        layers.extend(shared(|c| &c.prefix, "in")?);
        for g in 0..groups.len() {
            layers.extend(
                cuts.iter()
                    .map(|c| named(&c.groups[g], &format!("caches{g}"))),
            );
        }
        layers.extend(shared(|c| &c.suffix, "out")?);
    }
    Ok(Module {
        consts: module.consts,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parts::tests::tiny;

    fn block(module: &Module) -> &Layer {
        module.layers.iter().find(|l| l.name == "block.0").unwrap()
    }

    fn names(layer: &Layer, states: &[usize]) -> Group {
        states
            .iter()
            .map(|&s| layer.value(layer.states[s]).name.clone())
            .collect()
    }

    #[test]
    fn a_heads_keys_and_values_are_one_cluster() {
        let module = tiny();
        let block = block(&module);
        let clusters = clusters(block);
        assert_eq!(clusters.len(), 4, "one per head");
        for c in &clusters {
            let named = names(block, c);
            let head: BTreeSet<&str> = named.iter().map(|n| &n[..n.len() - 8]).collect();
            assert_eq!(named.len(), 2);
            assert_eq!(head.len(), 1, "{named:?}: keys and values of one head");
        }
    }

    #[test]
    fn groups_split_the_layer_into_what_reads_no_cache_the_groups_and_what_combines_them() {
        let module = tiny();
        let block = block(&module);
        let clusters = clusters(block);
        let groups: Vec<Group> = vec![
            names(block, &[clusters[0].clone(), clusters[1].clone()].concat()),
            names(block, &[clusters[2].clone(), clusters[3].clone()].concat()),
        ];
        let cut = cut(block, &groups).unwrap();
        let (prefix, suffix) = (cut.prefix.unwrap(), cut.suffix.unwrap());
        assert!(prefix.states.is_empty() && suffix.states.is_empty());
        assert_eq!(cut.groups.len(), 2);
        let insts: usize = cut.groups.iter().map(|g| g.insts.len()).sum();
        assert_eq!(
            prefix.insts.len() + insts + suffix.insts.len(),
            block.insts.len()
        );
        for g in &cut.groups {
            assert_eq!(g.states.len(), 4);
            // A group reads the block's input or what the prefix returns, nothing of the other.
            for &i in &g.inputs {
                let name = &g.value(i).name;
                let from_prefix = prefix
                    .outputs
                    .iter()
                    .any(|&o| &prefix.value(o).name == name);
                assert!(from_prefix || block.inputs.iter().any(|&b| &block.value(b).name == name));
            }
        }
        assert_eq!(suffix.outputs.len(), block.outputs.len());
        // A split head (its keys in one group, its values in the other) is no cut.
        let mut split_head = groups.clone();
        let keys = split_head[0]
            .iter()
            .find(|n| n.ends_with("k_cache"))
            .unwrap()
            .clone();
        split_head[0].remove(&keys);
        split_head[1].insert(keys);
        assert!(super::cut(block, &split_head).is_none());
        // A state in no group is no cut either.
        assert!(super::cut(block, &groups[..1]).is_none());
    }

    #[test]
    fn groups_are_packed_within_the_bound() {
        let module = tiny();
        let block = block(&module);
        assert!(
            groups(&module, block, usize::MAX).is_none(),
            "one group: no cut"
        );
        let one_each = groups(&module, block, 1).unwrap();
        assert_eq!(
            one_each.len(),
            4,
            "a cluster above the bound is a group alone"
        );
        // Room for two heads: the groups (each within it) are fewer than the heads.
        let clusters = clusters(block);
        let pair = names(block, &[clusters[0].clone(), clusters[1].clone()].concat());
        let rest = names(block, &[clusters[2].clone(), clusters[3].clone()].concat());
        let max = cost::layer(&module, &cut(block, &[pair, rest]).unwrap().groups[0]).1;
        let packed = groups(&module, block, max).unwrap();
        assert!((2..4).contains(&packed.len()), "{packed:?}");
        let parts = cut(block, &packed).unwrap();
        for g in &parts.groups {
            assert!(cost::layer(&module, g).1 <= max);
        }
    }
}

//! Context buckets (DESIGN §3): a stage of the model that carries KV caches is compiled at
//! several contexts, so that a step pays for the slots it can use rather than the model's whole
//! context. The buckets of a stage are adjacent layers of one name, in ascending context (their
//! states' slot count), with the same inputs, outputs and states but for the slot count. A
//! stateless stage (the embedding, the head) is one layer. A step at position `p` runs, in each
//! stage, the smallest bucket holding `p + 1` positions.

use crate::ir::{Layer, Module};

/// One stage of the model: the module's layers of one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    /// Indices into `Module::layers`, ascending in context.
    pub layers: Vec<usize>,
}

impl Layer {
    /// How many positions the layer's caches hold (its states' slot count); `None` without
    /// states.
    pub fn context(&self) -> Option<usize> {
        let first = self.states.first()?;
        self.value(*first).ty.shape.first().copied()
    }
}

impl Module {
    /// The stages in module order (adjacent layers of one name form one stage).
    pub fn stages(&self) -> Vec<Stage> {
        let mut stages: Vec<Stage> = Vec::new();
        for (index, layer) in self.layers.iter().enumerate() {
            match stages.last_mut() {
                Some(stage) if stage.name == layer.name => stage.layers.push(index),
                _ => stages.push(Stage {
                    name: layer.name.clone(),
                    layers: vec![index],
                }),
            }
        }
        stages
    }

    /// The contexts of the module's buckets, ascending, each once (empty without caches).
    pub fn contexts(&self) -> Vec<usize> {
        let mut contexts: Vec<usize> = self.layers.iter().filter_map(|l| l.context()).collect();
        contexts.sort_unstable();
        contexts.dedup();
        contexts
    }

    /// The bucket a run of `positions` steps needs keys for: the smallest holding them, else
    /// the largest (`None` without caches).
    pub fn bucket_for(&self, positions: usize) -> Option<usize> {
        let contexts = self.contexts();
        contexts
            .iter()
            .copied()
            .find(|&c| c >= positions)
            .or(contexts.last().copied())
    }
}

/// Whether a setup limited to `buckets` (all when `None`) makes keys for `layer`: layers
/// without caches always, others when their context is one of `buckets`.
pub fn keyed(layer: &Layer, buckets: Option<&[usize]>) -> bool {
    match (layer.context(), buckets) {
        (Some(c), Some(buckets)) => buckets.contains(&c),
        _ => true,
    }
}

impl Stage {
    /// The layer that proves a step at `pos`: the stage's smallest bucket holding `pos + 1`
    /// positions (a stateless stage's only layer), if any does.
    pub fn layer_at(&self, module: &Module, pos: usize) -> Option<usize> {
        self.layers.iter().copied().find(|&l| {
            module.layers[l]
                .context()
                .is_none_or(|context| pos < context)
        })
    }

    /// The stage's largest context (`None` when stateless).
    pub fn context(&self, module: &Module) -> Option<usize> {
        self.layers.last().and_then(|&l| module.layers[l].context())
    }
}

/// Why `layer` cannot be the next bucket after `previous` (same name), if it cannot.
pub(crate) fn bucket_problem(previous: &Layer, layer: &Layer) -> Option<String> {
    let (Some(before), Some(context)) = (previous.context(), layer.context()) else {
        return Some(format!(
            "layer `{}` is defined again; only layers with states may repeat, as context buckets",
            layer.name
        ));
    };
    if context <= before {
        return Some(format!(
            "bucket of context {context} after one of context {before}: a stage's buckets ascend \
             in context"
        ));
    }
    let signature = |l: &Layer, ids: &[crate::ValueId]| -> Vec<(String, crate::TensorType)> {
        ids.iter()
            .map(|&v| (l.value(v).name.clone(), l.value(v).ty.clone()))
            .collect()
    };
    if signature(previous, &previous.inputs) != signature(layer, &layer.inputs)
        || signature(previous, &previous.outputs) != signature(layer, &layer.outputs)
    {
        return Some(format!(
            "this bucket of `{}` has other inputs or outputs than its previous bucket",
            layer.name
        ));
    }
    // The states alike but for the slot count, which is the same in all of a bucket's states.
    let state = |l: &Layer, k: usize| {
        let v = l.value(l.states[k]);
        let mut ty = v.ty.clone();
        let slots = ty.shape.first().copied();
        if let Some(first) = ty.shape.first_mut() {
            *first = 0;
        }
        (v.name.clone(), ty, slots)
    };
    let same_states = previous.states.len() == layer.states.len()
        && (0..layer.states.len()).all(|k| {
            let (a, b) = (state(previous, k), state(layer, k));
            a.0 == b.0 && a.1 == b.1 && a.2 == Some(before) && b.2 == Some(context)
        });
    (!same_states).then(|| {
        format!(
            "this bucket of `{}` has other states than its previous bucket (they may differ only \
             in their slot count, one for all of a bucket's states)",
            layer.name
        )
    })
}

#[cfg(test)]
mod tests {
    const BUCKETS: &str = include_str!("../../tests/filetests/verify/ok/context_buckets.zkir");

    #[test]
    fn a_step_runs_the_smallest_bucket_holding_its_position() {
        let module = crate::check(BUCKETS).expect("valid").module;
        let stages = module.stages();
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["embed", "block"]);
        assert_eq!(stages[1].layers, [1, 2, 3]);
        assert_eq!(stages[1].context(&module), Some(8));
        assert_eq!(stages[0].context(&module), None);
        let at = |pos| stages[1].layer_at(&module, pos);
        assert_eq!(
            [at(0), at(1), at(2), at(3), at(4), at(7)],
            [Some(1), Some(1), Some(2), Some(2), Some(3), Some(3)]
        );
        assert_eq!(at(8), None);
        assert_eq!(stages[0].layer_at(&module, 1000), Some(0));
    }
}

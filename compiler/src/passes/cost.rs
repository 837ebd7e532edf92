//! Extraction's cost: the constraints of each e-node, from the backend's formulas
//! (`backend::cost::op`, the one cost model); `super::extract` sums them over the classes a
//! program needs, then counts instructions, so that among programs of equal constraints the
//! shorter one wins.

use super::facts::Graph;
use super::node::Node;
use crate::backend::cost::{self, Arg};
use crate::backend::range::Ranges;

/// Costs in a circuit that checks ranges by `ranges` (the layer's choice before optimizing).
pub struct ConstraintCost<'a> {
    egraph: &'a Graph,
    ranges: Ranges,
}

impl<'a> ConstraintCost<'a> {
    pub fn new(egraph: &'a Graph, ranges: Ranges) -> ConstraintCost<'a> {
        ConstraintCost { egraph, ranges }
    }

    /// The constraints of one e-node alone.
    pub fn node(&self, node: &Node) -> usize {
        let Node::Inst(head, children) = node else {
            return 0;
        };
        let args: Vec<Arg> = children
            .iter()
            .map(|&c| {
                let fact = &self.egraph[c].data;
                Arg {
                    ty: fact.ty(),
                    constant: fact.constant().is_some(),
                }
            })
            .collect();
        cost::op(&head.op, &args, &head.results[0], self.ranges)
    }
}

//! Extraction by DAG cost: a class's cost counts each class it needs once, however many paths
//! reach it. egg's tree-cost extractor counts a shared operand once per use, which makes any
//! rewrite that reads a value twice (the attention rules read `q` or `p` twice) look more
//! expensive than it is; circuits share wires, so the DAG cost is the true one.
//!
//! Greedy fixpoint: every node whose children all have a choice gets the union of their
//! needed classes plus its own; a class keeps its cheapest node. Costs only fall, so it ends.
//! A node whose children already need its class (a cycle) is skipped.

use super::cost::ConstraintCost;
use super::facts::Graph;
use super::node::Node;
use egg::{Id, Language};
use std::collections::HashMap;
use std::rc::Rc;

/// (constraints, instructions), compared in that order.
pub type Cost = (usize, usize);

struct Choice {
    node: Node,
    total: Cost,
    /// Every class the choice needs, itself included, with its own node's cost.
    needs: Rc<HashMap<Id, Cost>>,
}

pub struct DagExtractor<'a> {
    egraph: &'a Graph,
    best: HashMap<Id, Choice>,
}

impl<'a> DagExtractor<'a> {
    pub fn new(egraph: &'a Graph) -> DagExtractor<'a> {
        let cost = ConstraintCost::new(egraph);
        let mut best: HashMap<Id, Choice> = HashMap::new();
        let mut changed = true;
        while changed {
            changed = false;
            for class in egraph.classes() {
                for node in &class.nodes {
                    let Some(choice) = Self::evaluate(egraph, &cost, &best, class.id, node) else {
                        continue;
                    };
                    if best.get(&class.id).is_none_or(|b| choice.total < b.total) {
                        best.insert(class.id, choice);
                        changed = true;
                    }
                }
            }
        }
        DagExtractor { egraph, best }
    }

    fn evaluate(
        egraph: &Graph,
        cost: &ConstraintCost,
        best: &HashMap<Id, Choice>,
        class: Id,
        node: &Node,
    ) -> Option<Choice> {
        let mut needs: HashMap<Id, Cost> = HashMap::new();
        for &child in node.children() {
            let chosen = best.get(&egraph.find(child))?;
            if chosen.needs.contains_key(&class) {
                return None;
            }
            needs.extend(chosen.needs.iter().map(|(&k, &v)| (k, v)));
        }
        needs.insert(class, (cost.node(node), usize::from(node.head().is_some())));
        let total = needs.values().fold((0usize, 0usize), |(c, n), &(dc, dn)| {
            (c.saturating_add(dc), n + dn)
        });
        Some(Choice {
            node: node.clone(),
            total,
            needs: Rc::new(needs),
        })
    }

    /// The chosen node of a class.
    pub fn find_best_node(&self, class: Id) -> &Node {
        &self.best[&self.egraph.find(class)].node
    }
}

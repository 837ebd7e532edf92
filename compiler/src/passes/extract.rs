//! Extraction by DAG cost: a class's cost counts each class it needs once, however many paths
//! reach it. egg's tree-cost extractor counts a shared operand once per use, which makes any
//! rewrite that reads a value twice (the attention rules read `q` or `p` twice) look more
//! expensive than it is; circuits share wires, so the DAG cost is the true one.
//!
//! Greedy: a class switches to a node when the node's program (the classes its children's
//! current choices reach, plus itself) costs less than the class's current program. Both are
//! computed from the current choices, never from stored sets that later switches make stale,
//! and a node whose children reach its own class is refused: the choices stay acyclic after
//! every switch. Rounds repeat until nothing switches (or [`MAX_ROUNDS`]).

use super::cost::ConstraintCost;
use super::facts::Graph;
use super::node::Node;
use crate::backend::range::Ranges;
use egg::{Id, Language};
use std::collections::{HashMap, HashSet};

/// (constraints, instructions), compared in that order.
pub type Cost = (usize, usize);

/// Each round can only lower a class's cost; this bounds the rounds where costs keep shifting
/// in small steps (the choices are valid after any round).
const MAX_ROUNDS: usize = 64;

pub struct DagExtractor<'a> {
    egraph: &'a Graph,
    cost: ConstraintCost<'a>,
    best: HashMap<Id, Node>,
}

impl<'a> DagExtractor<'a> {
    pub fn new(egraph: &'a Graph, ranges: Ranges) -> DagExtractor<'a> {
        let mut extractor = DagExtractor {
            egraph,
            cost: ConstraintCost::new(egraph, ranges),
            best: HashMap::new(),
        };
        for _ in 0..MAX_ROUNDS {
            let mut switched = false;
            for class in egraph.classes() {
                for node in &class.nodes {
                    switched |= extractor.consider(class.id, node);
                }
            }
            if !switched {
                break;
            }
        }
        extractor
    }

    /// Makes `node` the choice of `class` if it is cheaper and keeps the choices acyclic.
    fn consider(&mut self, class: Id, node: &Node) -> bool {
        let children: Vec<Id> = node
            .children()
            .iter()
            .map(|&c| self.egraph.find(c))
            .collect();
        if children.iter().any(|c| !self.best.contains_key(c)) {
            return false;
        }
        let reached = self.reach(&children);
        if reached.contains(&class) {
            return false;
        }
        let candidate = self.total(&reached, node);
        let better = match self.best.get(&class) {
            None => true,
            Some(current) => {
                let current = current.clone();
                let theirs: Vec<Id> = current
                    .children()
                    .iter()
                    .map(|&c| self.egraph.find(c))
                    .collect();
                candidate < self.total(&self.reach(&theirs), &current)
            }
        };
        if better {
            self.best.insert(class, node.clone());
        }
        better
    }

    /// The classes the current choices of `roots` need, `roots` included.
    fn reach(&self, roots: &[Id]) -> HashSet<Id> {
        let mut seen = HashSet::new();
        let mut stack = roots.to_vec();
        while let Some(c) = stack.pop() {
            if seen.insert(c) {
                let node = &self.best[&c];
                stack.extend(node.children().iter().map(|&k| self.egraph.find(k)));
            }
        }
        seen
    }

    /// The cost of `node` over the program of the classes `reached`.
    fn total(&self, reached: &HashSet<Id>, node: &Node) -> Cost {
        let own = |n: &Node| (self.cost.node(n), usize::from(n.head().is_some()));
        reached
            .iter()
            .map(|c| own(&self.best[c]))
            .chain([own(node)])
            .fold((0, 0), |(c, n), (dc, dn)| (c.saturating_add(dc), n + dn))
    }

    /// The chosen node of a class.
    pub fn find_best_node(&self, class: Id) -> &Node {
        &self.best[&self.egraph.find(class)]
    }
}

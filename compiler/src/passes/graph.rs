//! A layer into an e-graph, and the cheapest equivalent layer back out.
//!
//! Going out keeps what the layer's users see: the signature (inputs and states in order), the
//! names and types of the outputs, a `kv_append` for every state, the original names of values
//! and, as far as it can, the original instruction order; everything else is whatever the
//! extraction found cheapest. Unused instructions disappear (only what the outputs need is
//! extracted, and each state's update, which costs nothing when nothing reads it).

use super::cost::ConstraintCost;
use super::extract::DagExtractor;
use super::facts::{ConstFacts, Facts, Graph};
use super::node::Node;
use crate::backend::range::Ranges;
use egg::{Id, Language};
use std::collections::{BTreeMap, HashMap, HashSet};
use zkc_lang::{Inst, Layer, Op, Operand, ValueData, ValueDef, ValueId};

/// A layer in an e-graph, with what is needed to bring it back.
pub struct LayerGraph {
    pub egraph: Graph,
    /// The class of each of the original layer's values.
    classes: Vec<Id>,
    original: Layer,
    original_names: HashSet<String>,
    /// How the layer's circuit checks ranges, which prices the nodes.
    ranges: Ranges,
}

impl LayerGraph {
    pub fn new(consts: Vec<ConstFacts>, layer: &Layer, ranges: Ranges) -> LayerGraph {
        let types = |ids: &[ValueId]| ids.iter().map(|&v| layer.value(v).ty.clone()).collect();
        let facts = Facts::new(consts, types(&layer.inputs), types(&layer.states));
        let mut egraph = Graph::new(facts);
        let mut classes = vec![Id::from(0usize); layer.values.len()];
        for (k, &v) in layer.inputs.iter().enumerate() {
            classes[v.index()] = egraph.add(Node::Input(k));
        }
        for (k, &v) in layer.states.iter().enumerate() {
            classes[v.index()] = egraph.add(Node::State(k));
        }
        for inst in &layer.insts {
            let args = inst
                .args
                .iter()
                .map(|&a| match a {
                    Operand::Value(v) => classes[v.index()],
                    Operand::Const(c) => egraph.add(Node::Const(c)),
                })
                .collect();
            let results = inst.results.iter().map(|&r| layer.value(r).ty.clone());
            let id = egraph.add(Node::inst(inst.op.clone(), results.collect(), args));
            match inst.op {
                Op::Split { .. } => {
                    for (k, &r) in inst.results.iter().enumerate() {
                        classes[r.index()] = egraph.add(Node::Part(k, [id]));
                    }
                }
                _ => classes[inst.results[0].index()] = id,
            }
        }
        egraph.rebuild();
        LayerGraph {
            egraph,
            classes,
            original_names: layer.values.iter().map(|v| v.name.clone()).collect(),
            original: layer.clone(),
            ranges,
        }
    }

    /// Runs the rewrites to saturation or a limit: the runner's report, and how many times
    /// each rule changed the e-graph.
    pub fn saturate(
        &mut self,
        rewrites: &[egg::Rewrite<Node, Facts>],
        limits: &super::Limits,
    ) -> (egg::Report, BTreeMap<String, usize>) {
        let egraph = std::mem::replace(&mut self.egraph, Graph::new(Facts::empty()));
        let runner: egg::Runner<Node, Facts> = egg::Runner::new(Facts::empty())
            .with_egraph(egraph)
            .with_iter_limit(limits.iterations)
            .with_node_limit(limits.nodes)
            .with_time_limit(limits.time)
            .with_scheduler(egg::SimpleScheduler)
            .run(rewrites);
        let mut applied = BTreeMap::new();
        for (rule, n) in runner.iterations.iter().flat_map(|i| &i.applied) {
            *applied.entry(rule.to_string()).or_insert(0) += n;
        }
        let report = runner.report();
        self.egraph = runner.egraph;
        (report, applied)
    }

    /// The constants' facts, and the constants the rules made.
    pub fn into_constants(self) -> (Vec<ConstFacts>, Vec<zkc_lang::Const>) {
        self.egraph.analysis.into_constants()
    }

    /// The classes extraction starts from: the outputs.
    fn roots(&self) -> Vec<Id> {
        self.original
            .outputs
            .iter()
            .map(|&v| self.class(v))
            .collect()
    }

    /// Each state's update (validation wants one per state, even when nothing reads it).
    fn state_updates(&self) -> Vec<Id> {
        self.original
            .insts
            .iter()
            .filter(|i| {
                i.op == Op::KvAppend
                    && matches!(i.args[0], Operand::Value(s) if self.original.states.contains(&s))
            })
            .map(|i| self.class(i.results[0]))
            .collect()
    }

    /// The class of a value of the original layer.
    pub fn class(&self, v: ValueId) -> Id {
        self.egraph.find(self.classes[v.index()])
    }

    /// The cheapest equivalent layer, and its constraints by the cost model (without the
    /// boundary, which extraction cannot change).
    pub fn extract(&self) -> (Layer, usize) {
        let extractor = DagExtractor::new(&self.egraph, self.ranges);
        let mut out = Emitter {
            graph: self,
            extractor: &extractor,
            layer: Layer {
                name: self.original.name.clone(),
                values: Vec::new(),
                inputs: Vec::new(),
                states: Vec::new(),
                insts: Vec::new(),
                outputs: Vec::new(),
            },
            values: HashMap::new(),
            names: self.names(),
            used: HashSet::new(),
            needed: HashSet::new(),
            context: Vec::new(),
            constraints: 0,
        };
        out.signature();
        let roots = self.roots();
        out.needed = out.reachable(&roots);
        for inst in &self.original.insts {
            for &r in &inst.results {
                if out.needed.contains(&self.class(r)) {
                    out.emit(self.class(r));
                }
            }
        }
        for &root in &roots {
            out.emit(root);
        }
        for update in self.state_updates() {
            out.emit(update);
        }
        out.outputs();
        let constraints = out.constraints;
        let mut layer = out.layer;
        layer.canonicalize();
        (layer, constraints)
    }

    /// A name for each class: an output's name first, then the first original value's.
    fn names(&self) -> HashMap<Id, String> {
        let mut names = HashMap::new();
        let fixed = self.original.inputs.iter().chain(&self.original.states);
        for &v in fixed.chain(&self.original.outputs) {
            names
                .entry(self.class(v))
                .or_insert_with(|| self.original.value(v).name.clone());
        }
        for (k, value) in self.original.values.iter().enumerate() {
            names
                .entry(self.class(ValueId(k as u32)))
                .or_insert_with(|| value.name.clone());
        }
        names
    }
}

/// Writes the extracted layer, one class at a time, operands first.
struct Emitter<'a, 'e> {
    graph: &'a LayerGraph,
    extractor: &'e DagExtractor<'a>,
    layer: Layer,
    /// The value (or for a `split`, the first part's value) each emitted class became.
    values: HashMap<Id, ValueId>,
    names: HashMap<Id, String>,
    used: HashSet<String>,
    /// The classes the outputs need; the rest (unread state updates) cost nothing.
    needed: HashSet<Id>,
    /// The names of the values being emitted, innermost last (for naming new ones).
    context: Vec<String>,
    constraints: usize,
}

impl Emitter<'_, '_> {
    fn egraph(&self) -> &Graph {
        &self.graph.egraph
    }

    fn signature(&mut self) {
        let original = &self.graph.original;
        for (k, &v) in original.inputs.iter().enumerate() {
            let id = self.value(original.value(v).name.clone(), v, ValueDef::Input(k));
            self.layer.inputs.push(id);
            self.values.insert(self.graph.class(v), id);
        }
        for (k, &v) in original.states.iter().enumerate() {
            let id = self.value(original.value(v).name.clone(), v, ValueDef::State(k));
            self.layer.states.push(id);
            self.values.insert(self.graph.class(v), id);
        }
    }

    fn value(&mut self, name: String, like: ValueId, def: ValueDef) -> ValueId {
        let ty = self.graph.original.value(like).ty.clone();
        self.push(name, ty, def)
    }

    fn push(&mut self, name: String, ty: zkc_lang::TensorType, def: ValueDef) -> ValueId {
        self.used.insert(name.clone());
        self.layer.values.push(ValueData { name, ty, def });
        ValueId(self.layer.values.len() as u32 - 1)
    }

    /// A name not yet used in the layer: the class's own, or for a class rules made, the name
    /// of the value it is computed for with the op's (`%scores.matmul`), never an original
    /// name (so that no output's name is taken).
    fn name_of(&mut self, class: Option<Id>, op: &str) -> String {
        let own = class.and_then(|c| self.names.get(&c).cloned());
        let made = own.is_none();
        let base = own.unwrap_or_else(|| {
            let within = self.context.last().unwrap_or(&self.layer.name);
            format!("{within}.{op}")
        });
        let mut name = base.clone();
        let mut k = 1;
        while self.used.contains(&name) || (made && self.graph.original_names.contains(&name)) {
            name = format!("{base}.{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    /// The classes the best nodes of `roots` need.
    fn reachable(&self, roots: &[Id]) -> HashSet<Id> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Id> = roots.to_vec();
        while let Some(c) = stack.pop() {
            let c = self.egraph().find(c);
            if seen.insert(c) {
                stack.extend(self.extractor.find_best_node(c).children());
            }
        }
        seen
    }

    /// The operand `class` is, emitting its instruction (and theirs) first.
    fn emit(&mut self, class: Id) -> Operand {
        let class = self.egraph().find(class);
        let node = self.extractor.find_best_node(class).clone();
        match &node {
            Node::Const(c) => return Operand::Const(*c),
            Node::Part(k, [of]) => {
                let of = self.egraph().find(*of);
                if !self.values.contains_key(&of) {
                    self.emit(of);
                }
                let first = self.values[&of];
                return Operand::Value(ValueId(first.0 + *k as u32));
            }
            _ => {}
        }
        if let Some(&v) = self.values.get(&class) {
            return Operand::Value(v);
        }
        let Node::Inst(head, children) = &node else {
            unreachable!("inputs and states are emitted with the signature")
        };
        let own = match head.op {
            Op::Split { .. } => None,
            _ => Some(self.name_of(Some(class), head.op.name())),
        };
        let named = self.names.contains_key(&class);
        let within = own
            .clone()
            .filter(|_| named)
            .or_else(|| self.context.last().cloned());
        self.context.extend(within);
        let args: Vec<Operand> = children.iter().map(|&c| self.emit(c)).collect();
        self.context.pop();
        if self.needed.contains(&class) {
            self.constraints += ConstraintCost::new(self.egraph(), self.graph.ranges).node(&node);
        }
        let inst = self.layer.insts.len();
        let mut results = Vec::new();
        for (k, ty) in head.results.iter().enumerate() {
            let name = match &own {
                Some(name) => name.clone(),
                None => {
                    // The part's class name, if this part is what that class became.
                    let part = Node::Part(k, [class]);
                    let named = self
                        .egraph()
                        .lookup(part.clone())
                        .filter(|&c| self.extractor.find_best_node(c) == &part);
                    self.name_of(named, "part")
                }
            };
            results.push(self.push(name, ty.clone(), ValueDef::Inst { inst, result: k }));
        }
        self.values.insert(class, results[0]);
        self.layer.insts.push(Inst {
            op: head.op.clone(),
            args,
            results,
        });
        Operand::Value(self.values[&class])
    }

    /// The outputs, under their original names: a value that is another output too, or that
    /// extraction named otherwise (an input, a class merged with an earlier value), is returned through a free `reshape` copy.
    fn outputs(&mut self) {
        let original = &self.graph.original;
        let mut returned = HashSet::new();
        for &v in &original.outputs.clone() {
            let want = original.value(v).name.clone();
            let Operand::Value(mut id) = self.emit(self.graph.class(v)) else {
                unreachable!("outputs are values")
            };
            if self.layer.value(id).name != want || !returned.insert(id) {
                // No other class carries an output's name (names() gives it to this class or
                // none) and made names avoid original ones, so `want` is free.
                let ty = self.layer.value(id).ty.clone();
                let name = want;
                let inst = self.layer.insts.len();
                let copy = self.push(name, ty.clone(), ValueDef::Inst { inst, result: 0 });
                self.layer.insts.push(Inst {
                    op: Op::Reshape { shape: ty.shape },
                    args: vec![Operand::Value(id)],
                    results: vec![copy],
                });
                id = copy;
                returned.insert(id);
            }
            self.layer.outputs.push(id);
        }
    }
}

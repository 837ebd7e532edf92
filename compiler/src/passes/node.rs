//! The IR as an egg language: one e-node per instruction, with the op's attributes and declared
//! result types in the node itself, so that two instructions are the same e-node exactly when
//! they compute the same thing (common subexpressions merge by hash-consing).

use egg::{Id, Language};
use zkc_lang::{ConstId, Op, TensorType};

/// An instruction's head: the op with its attributes and the types it declares.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Head {
    pub op: Op,
    pub results: Vec<TensorType>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// The layer's input number k.
    Input(usize),
    /// The layer's state number k.
    State(usize),
    /// A module constant used as an operand.
    Const(ConstId),
    /// An instruction; its class is its value, or for `split` the tuple of its parts.
    Inst(Box<Head>, Vec<Id>),
    /// Part k of a `split`.
    Part(usize, [Id; 1]),
}

impl Node {
    pub fn inst(op: Op, results: Vec<TensorType>, args: Vec<Id>) -> Node {
        Node::Inst(Box::new(Head { op, results }), args)
    }

    /// The instruction's head, for the nodes that are instructions.
    pub fn head(&self) -> Option<&Head> {
        match self {
            Node::Inst(head, _) => Some(head),
            _ => None,
        }
    }
}

/// What egg compares before children: the variant and its payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Input(usize),
    State(usize),
    Const(ConstId),
    Inst(Box<Head>),
    Part(usize),
}

impl Language for Node {
    type Discriminant = Kind;

    fn discriminant(&self) -> Kind {
        match self {
            Node::Input(k) => Kind::Input(*k),
            Node::State(k) => Kind::State(*k),
            Node::Const(c) => Kind::Const(*c),
            Node::Inst(head, _) => Kind::Inst(head.clone()),
            Node::Part(k, _) => Kind::Part(*k),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        match (self, other) {
            (Node::Inst(a, xs), Node::Inst(b, ys)) => a == b && xs.len() == ys.len(),
            (Node::Part(a, _), Node::Part(b, _)) => a == b,
            _ => self == other,
        }
    }

    fn children(&self) -> &[Id] {
        match self {
            Node::Inst(_, args) => args,
            Node::Part(_, of) => of,
            _ => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Node::Inst(_, args) => args,
            Node::Part(_, of) => of,
            _ => &mut [],
        }
    }
}

//! A layer's KV caches as one public commitment before the step and one after: a hash chain
//! over slots (DESIGN §3, docs/ir.md §5). Slot `j` is the concatenation of slot `j` of every
//! state of the layer (declaration order), packed; `c_0 = 0` and
//! `c_{j+1} = H(c_j, pack(slot j))` (sponge domain [`Domain::CacheChain`]). A cache holding
//! positions `0..p` is committed by `c_p`. A step at `pos = p` proves:
//!
//! - the cache before the step is the committed prefix and zeros after it: slots `j >= p` are
//!   constrained to 0 (so the cache is exactly the interpreter's, and no slot is left free);
//! - `before = c_p`, chained over the before-cache's slots and selected by a one-hot `φ` at `p`
//!   (which `kv_append` shares to write slot `p`);
//! - `after = H(before, pack(new slot))`, the new slot being the `kv_append` operands `x`.
//!
//! Authenticating the old slots costs one slot hash each and the new commitment one more; the
//! cache is range-checked once (for the packing's injectivity), not twice as a whole-cache
//! commitment before and after would.

use super::commit::{
    hash, hash_gadget, pack, pack_checked, pack_gadget, per_element, sponge_cost, Commitment,
    Domain,
};
use super::range::{range_checked, Ranges};
use super::{field, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use zkc_lang::semantics::Tensor;
use zkc_lang::{DType, Layer, Op, Operand, ValueId};

/// Where a layer's caches and their step's new slot are.
#[derive(Clone, Debug)]
pub struct Caches {
    pub states: Vec<ValueId>,
    /// Per state, the value its `kv_append` writes.
    pub appended: Vec<ValueId>,
    pub pos: ValueId,
    pub slots: usize,
    /// Per state, values per slot.
    pub widths: Vec<usize>,
    pub dtype: DType,
}

impl Caches {
    /// The layer's caches, if it has any. Needs what `backend::check` ensures: one `kv_append`
    /// per state, all with the same `pos` value, and all states of one dtype and slot count.
    pub fn of(layer: &Layer) -> Option<Caches> {
        let first = *layer.states.first()?;
        let mut appended = Vec::new();
        let mut pos = None;
        for &s in &layer.states {
            let append = layer
                .insts
                .iter()
                .find(|i| i.op == Op::KvAppend && i.args[0] == Operand::Value(s))
                .expect("valid layers append every state");
            let (Operand::Value(x), Operand::Value(p)) = (append.args[1], append.args[2]) else {
                unreachable!("validated: kv_append's operands are values")
            };
            appended.push(x);
            pos = Some(p);
        }
        let ty = &layer.value(first).ty;
        Some(Caches {
            widths: layer
                .states
                .iter()
                .map(|&s| layer.value(s).ty.shape[1..].iter().product())
                .collect(),
            states: layer.states.clone(),
            appended,
            pos: pos.expect("a state was appended"),
            slots: ty.shape[0],
            dtype: ty.dtype,
        })
    }

    fn width(&self) -> usize {
        self.widths.iter().sum()
    }

    /// Slot `j` of every state, concatenated.
    fn slot<T: Clone>(&self, of: impl Fn(ValueId) -> Vec<T>, j: usize) -> Vec<T> {
        self.states
            .iter()
            .zip(&self.widths)
            .flat_map(|(&s, &w)| of(s)[j * w..(j + 1) * w].to_vec())
            .collect()
    }

    /// The commitments before and after the step, natively, from the layer's record.
    pub fn commitments(&self, values: &[Tensor]) -> (F, F) {
        let pos = values[self.pos.index()].data()[0] as usize;
        let data = |v: ValueId| values[v.index()].data().to_vec();
        let mut before = empty();
        for j in 0..pos.min(self.slots) {
            before = link(before, &pack(&self.slot(data, j), self.dtype));
        }
        let new: Vec<i64> = self.appended.iter().flat_map(|&x| data(x)).collect();
        (before, link(before, &pack(&new, self.dtype)))
    }

    /// The chain in the circuit over the states' wires (range-checked to the dtype, see
    /// [`Caches::allocate`]), with `phi` one-hot at `pos`; returns the commitments before and
    /// after (not yet public): [`Caches::cost`] constraints, less the one-hot's and the
    /// states' range checks.
    pub fn gadget(
        &self,
        cs: &ConstraintSystemRef<F>,
        wires: &[Option<Vec<Wire>>],
        phi: &[Wire],
    ) -> Result<(Commitment, Commitment), SynthesisError> {
        let of = |v: ValueId| wires[v.index()].clone().expect("defined");
        let mut chain = Commitment {
            lc: LinearCombination::zero(),
            value: empty(),
        };
        let mut before = Commitment {
            lc: LinearCombination::zero(),
            value: empty(),
        };
        let mut at_or_after_pos = LinearCombination::zero();
        let packed_width = self.width();
        for (j, phi_j) in phi.iter().enumerate().take(self.slots) {
            // c_j (covering slots 0..j-1) is `before` when pos = j: add φ_j * c_j (c_0 is 0).
            if j > 0 {
                let value = field(phi_j.value) * chain.value;
                let term = cs.new_witness_variable(|| Ok(value))?;
                cs.enforce_r1cs_constraint(
                    || phi_j.lc.clone(),
                    || chain.lc.clone(),
                    || term.into(),
                )?;
                before.lc = before.lc + term;
                before.value += value;
            }
            // [j >= pos] = sum_{k <= j} φ_k: a slot at or after pos holds zeros.
            at_or_after_pos = at_or_after_pos + &phi_j.lc;
            // Checked per packed element: the values are range-checked, so a packed element
            // equals the packing of zeros exactly when each of its values is zero.
            let packed = pack_checked(&self.slot(of, j), self.dtype);
            for (element, zero) in packed.iter().zip(pack(&vec![0; packed_width], self.dtype)) {
                cs.enforce_r1cs_constraint(
                    || at_or_after_pos.clone(),
                    || element.lc.clone() - (zero, Variable::One),
                    LinearCombination::zero,
                )?;
            }
            // The last slot is never before `pos` (it is all zeros): no link needed.
            if j + 1 < self.slots {
                let mut elements = vec![chain];
                elements.extend(packed);
                chain = hash_gadget(cs, Domain::CacheChain, &elements)?;
            }
        }
        let new: Vec<Wire> = self.appended.iter().flat_map(|&x| of(x)).collect();
        let mut elements = vec![before.clone()];
        elements.extend(pack_gadget(cs, &new, self.dtype)?);
        let after = hash_gadget(cs, Domain::CacheChain, &elements)?;
        Ok((before, after))
    }

    /// The states' values as range-checked wires (`rc(w)` each): the packing of their slots
    /// is then injective for free.
    pub fn allocate(
        &self,
        cs: &ConstraintSystemRef<F>,
        state: &Tensor,
    ) -> Result<Vec<Wire>, SynthesisError> {
        state
            .data()
            .iter()
            .map(|&v| range_checked(cs, v as i128, self.dtype.min() as i128, self.dtype.bits()))
            .collect()
    }

    /// Constraints of [`Caches::allocate`] for every state, [`Caches::gadget`] and the
    /// one-hot it reads: per slot `d*rc(w)` range checks and `e = ceil(d / per_element)`
    /// zero checks (one per packed element), and but for the last slot a slot hash and a
    /// selection product (none for slot 0); the new slot's range checks and hash; `C + 2` for
    /// the one-hot.
    pub fn cost(&self, r: Ranges) -> usize {
        let (c, d, w) = (self.slots, self.width(), r.rc(self.dtype.bits()));
        let e = d.div_ceil(per_element(self.dtype));
        let slot_hash = sponge_cost(Domain::CacheChain, 1 + e);
        (c + 2) + c * (d * w + e) + (c - 1) * (slot_hash + 1) + d * (w + 1) + slot_hash
    }
}

/// The commitment of an empty cache (before step 0).
pub fn empty() -> F {
    F::from(0u8)
}

/// One link of the chain: the commitment after appending a slot of packed elements.
pub fn link(previous: F, packed: &[F]) -> F {
    let mut elements = vec![previous];
    elements.extend_from_slice(packed);
    hash(Domain::CacheChain, &elements)
}

#[cfg(test)]
mod tests {
    use crate::backend::layer::{public_inputs, synthesize, Tables};
    use crate::backend::lookup::AssignmentDigest;
    use crate::backend::test_util::cs;
    use crate::backend::{cost, F};
    use ark_relations::gr1cs::ConstraintSystemRef;
    use zkc_lang::semantics::{kv_append, Tensor};
    use zkc_lang::Module;

    const LAYER: &str = "zkir 1\n\nlayer l(%k: i8[1, 2], %v: i8[1, 3], %p: i32[]) {\n  state %kc: i8[4, 2]\n  state %vc: i8[4, 3]\n  %keys = kv_append %kc, %k, %p : i8[4, 2]\n  %values = kv_append %vc, %v, %p : i8[4, 3]\n  return %keys, %values\n}\n";

    fn module() -> Module {
        zkc_lang::check(LAYER).ok().unwrap().module
    }

    /// The record of a step at `pos` after `pos` earlier steps: caches holding slots 0..pos.
    fn record(pos: usize) -> Vec<Tensor> {
        let t = |shape: Vec<usize>, data: Vec<i64>| Tensor::new(shape, data).unwrap();
        let (mut kc, mut vc) = (t(vec![4, 2], vec![0; 8]), t(vec![4, 3], vec![0; 12]));
        let k = |j: usize| t(vec![1, 2], vec![j as i64 - 3, 127 - j as i64]);
        let v = |j: usize| t(vec![1, 3], vec![-128, j as i64, 5]);
        for j in 0..pos {
            let p = Tensor::scalar(j as i64);
            kc = kv_append(&kc, &k(j), &p).unwrap();
            vc = kv_append(&vc, &v(j), &p).unwrap();
        }
        let p = Tensor::scalar(pos as i64);
        let keys = kv_append(&kc, &k(pos), &p).unwrap();
        let values = kv_append(&vc, &v(pos), &p).unwrap();
        vec![k(pos), v(pos), p, kc, vc, keys, values]
    }

    /// The module's only layer built from `values`.
    fn built(module: &Module, values: &[Tensor]) -> ConstraintSystemRef<F> {
        let cs = cs();
        let tables = Tables::new(module);
        synthesize(&cs, module, &tables, 0, values, &AssignmentDigest).unwrap();
        cs
    }

    /// Whether the circuit built from `values` is satisfied and makes public exactly `publics`.
    fn accepts(module: &Module, values: &[Tensor], publics: &[F]) -> bool {
        let cs = built(module, values);
        let instance = cs.borrow().unwrap().instance_assignment().unwrap()[1..].to_vec();
        // A circuit with lookups has its challenge as a last public input.
        let ranges = cost::ranges(module, &module.layers[0]);
        let challenge = usize::from(ranges != crate::backend::range::Ranges::Bits);
        cs.is_satisfied().unwrap()
            && instance.len() == publics.len() + challenge
            && instance[..publics.len()] == *publics
    }

    fn with(values: &[Tensor], at: usize, element: usize, value: i64) -> Vec<Tensor> {
        let mut out = values.to_vec();
        let mut data = out[at].data().to_vec();
        data[element] = value;
        out[at] = Tensor::new(out[at].shape().to_vec(), data).unwrap();
        out
    }

    #[test]
    fn the_chain_links_steps_and_the_circuit_matches_it() {
        let module = module();
        let layer = &module.layers[0];
        let mut previous_after = super::empty();
        for pos in 0..4 {
            let values = record(pos);
            let publics = public_inputs(layer, &values);
            // k, v, p | before, after | keys, values
            assert_eq!(publics[3], previous_after, "before = the last step's after");
            previous_after = publics[4];
            assert!(accepts(&module, &values, &publics), "pos {pos}");
            let cs = built(&module, &values);
            assert_eq!(cs.num_constraints(), cost::layer(&module, layer).1);
        }
    }

    #[test]
    fn a_changed_cache_slot_or_new_value_is_rejected() {
        let module = module();
        let values = record(2);
        let publics = public_inputs(&module.layers[0], &values);
        // An old slot of either cache (`%kc` is value 3, `%vc` value 4).
        assert!(!accepts(&module, &with(&values, 3, 1, 100), &publics));
        assert!(!accepts(&module, &with(&values, 4, 3, 1), &publics));
        // A slot at or after the position: the cache is zeros there.
        assert!(!accepts(&module, &with(&values, 3, 4, 1), &publics));
        assert!(!accepts(&module, &with(&values, 4, 11, -1), &publics));
        // The new slot: its commitment after changes.
        assert!(!accepts(&module, &with(&values, 1, 1, 3), &publics));
    }

    /// A step claiming an earlier position over a cache holding more slots: its own public
    /// inputs (chain prefix and new commitment for that position) are not enough, since the
    /// slots from the position on must be zero; and a full context has no free slot.
    #[test]
    fn another_position_is_rejected() {
        let module = module();
        let layer = &module.layers[0];
        let values = record(2);
        for pos in [1, 4] {
            let mut moved = values.clone();
            moved[2] = Tensor::scalar(pos);
            let publics = public_inputs(layer, &moved);
            assert!(!accepts(&module, &moved, &publics), "pos {pos}");
        }
        let publics = public_inputs(layer, &values);
        assert!(accepts(&module, &values, &publics));
    }

    /// Attention as the optimizer writes it: scores from the old cache and one written slot,
    /// the state's update unread. The update costs nothing, the chain still binds the cache
    /// (an old slot, a slot past the position and the new slot are all still rejected), and a
    /// `kv_append` at a position no cache shares pays for its own one-hot.
    #[test]
    fn unread_state_updates_cost_nothing_and_stay_bound() {
        use zkc_lang::semantics::matmul;
        use zkc_lang::DType;
        let source = "zkir 1\n\nlayer l(%k: i8[1, 2], %q: i8[2, 1], %p: i32[], %o: i32[]) {\n  \
                      state %kc: i8[4, 2]\n  %old = matmul %kc, %q : i32[4, 1]\n  \
                      %new = matmul %k, %q : i32[1, 1]\n  %s = kv_append %old, %new, %p : i32[4, 1]\n  \
                      %t = kv_append %old, %new, %o : i32[4, 1]\n  \
                      %keys = kv_append %kc, %k, %p : i8[4, 2]\n  return %s, %t\n}\n";
        let module = zkc_lang::check(source).ok().unwrap().module;
        let layer = &module.layers[0];
        let base = record(2);
        let (k, p, kc) = (&base[0], &base[2], &base[3]);
        let q = Tensor::new(vec![2, 1], vec![3, -5]).unwrap();
        let o = Tensor::scalar(1);
        let old = matmul(kc, &q, DType::I32).unwrap();
        let new = matmul(k, &q, DType::I32).unwrap();
        let s = kv_append(&old, &new, p).unwrap();
        let t = kv_append(&old, &new, &o).unwrap();
        let keys = kv_append(kc, k, p).unwrap();
        let values = vec![k.clone(), q, p.clone(), o, kc.clone(), old, new, s, t, keys];
        let (by_op, total) = cost::layer(&module, layer);
        // Two writes of 4 x 1 and one more one-hot (at `%o`) of 4 + 2; the update is free.
        assert_eq!(by_op["kv_append"], 4 + 4 + 6);
        let cs = built(&module, &values);
        assert_eq!(cs.num_constraints(), total);
        let publics = public_inputs(layer, &values);
        assert!(accepts(&module, &values, &publics));
        // `%kc` is value 4: an old slot, then a slot at the position.
        assert!(!accepts(&module, &with(&values, 4, 1, 100), &publics));
        assert!(!accepts(&module, &with(&values, 4, 4, 1), &publics));
        // The new slot `%k` (value 0) with the claimed results unchanged.
        assert!(!accepts(&module, &with(&values, 0, 1, 3), &publics));
    }
}

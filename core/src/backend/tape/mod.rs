//! [`Tape`]: reverse-mode autodiff as a layer over any forward-only backend, so that a backend
//! without autograd implements [`Primitives`] only and `Tape<MyKernels>` is a complete
//! [`Backend`](super::Backend).
//!
//! Every op runs the inner backend's kernel; when recording is on and an input requires a
//! gradient, the result is a graph node that keeps its differentiable inputs and the op's rule
//! (`tape/rules.rs`, with the tensors it needs) that turns the result's gradient into theirs,
//! written once per op with the inner backend's kernels. The design is the reference's tape
//! (`orz-reference`'s `autograd.rs`), generic over the inner backend:
//!
//! - `backward` orders the nodes the loss depends on topologically (an iterative depth-first
//!   search, so deep graphs cannot overflow the stack), seeds the loss with 1 and walks back,
//!   calling each node's rule once all of its consumers have contributed; gradients of
//!   intermediate nodes are dropped once used, and each call returns a fresh [`TapeGrads`].
//! - A node frees the graph behind it iteratively, so dropping a chain of 100 000 ops cannot
//!   overflow the stack either.
//! - A parameter's value sits behind a `RefCell`: [`Autodiff::assign_param_impl`] replaces it in
//!   place, so every clone of the handle sees the new value, while graphs built before keep the
//!   inner tensors they recorded (the old values).
//! - Gradients are computed with the inner kernels directly, outside the tape: no
//!   higher-order graph is built.
//! - `index_add_impl` and `scatter_add_impl` (the adjoints of `index_select` and `gather`) keep
//!   their provided defaults on the tape, built from recorded primitives and so differentiable
//!   themselves; the rules call the inner backend's, which it may override with a loop.

mod rules;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;

use super::DType;
use super::families::{BinaryOp, CompareOp, ReduceOp, UnaryOp};
use super::kernels::{Autodiff, Composites, Primitives};
use crate::Result;
use rules::Rule;

/// Reverse-mode autodiff over the forward-only backend `F` (see the [module docs](self)).
pub struct Tape<F: Primitives> {
    inner: F,
    recording: Cell<bool>,
}

impl<F: Primitives> Tape<F> {
    /// A tape over `inner`, recording on.
    pub fn new(inner: F) -> Self {
        Tape { inner, recording: Cell::new(true) }
    }

    /// The forward backend the tape runs its kernels on.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// Records the result `value` of an op on `inputs`: a graph node when recording is on and
    /// an input requires a gradient (`rule` gets which do), a constant otherwise.
    fn record(
        &self,
        value: F::Tensor,
        inputs: &[&TapeTensor<F>],
        rule: impl FnOnce(&[bool]) -> Rule<F::Tensor>,
    ) -> TapeTensor<F> {
        let needs: Vec<bool> = inputs.iter().map(|t| t.requires_grad()).collect();
        if !self.recording.get() || !needs.contains(&true) {
            return TapeTensor::new(value, Kind::Constant);
        }
        let parents = inputs.iter().zip(&needs).map(|(t, &n)| n.then(|| (*t).clone())).collect();
        let rule = rule(&needs);
        TapeTensor::new(value, Kind::Op { parents, rule })
    }
}

impl<F: Primitives + Default> Default for Tape<F> {
    fn default() -> Self {
        Tape::new(F::default())
    }
}

impl<F: Primitives + fmt::Debug> fmt::Debug for Tape<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tape").field("inner", &self.inner).field("recording", &self.recording.get()).finish()
    }
}

/// A tensor of a [`Tape`]: a cheap handle (`Rc`) on a graph node holding the inner backend's
/// tensor.
pub struct TapeTensor<F: Primitives>(Rc<Node<F>>);

/// One node: its current value and how it came to be.
struct Node<F: Primitives> {
    /// Behind a `RefCell` so that `assign_param` can replace a parameter's value in place.
    value: RefCell<F::Tensor>,
    kind: Kind<F>,
}

/// Whether and how gradients flow through a node.
enum Kind<F: Primitives> {
    /// Host data, a detached value, or a result recorded with gradients off.
    Constant,
    /// A trainable leaf: gradients are reported for it.
    Param,
    /// The result of an op on at least one input that requires a gradient.
    Op {
        /// One entry per input of the op, `None` for those that require no gradient.
        parents: Vec<Option<TapeTensor<F>>>,
        /// The op's vector-Jacobian product and the tensors it needs.
        rule: Rule<F::Tensor>,
    },
}

impl<F: Primitives> TapeTensor<F> {
    fn new(value: F::Tensor, kind: Kind<F>) -> Self {
        TapeTensor(Rc::new(Node { value: RefCell::new(value), kind }))
    }

    /// The inner backend's tensor holding the current values (a clone of its handle).
    pub fn value(&self) -> F::Tensor {
        self.0.value.borrow().clone()
    }

    /// Whether gradients flow into this tensor (a parameter, or computed from one while recording).
    pub fn requires_grad(&self) -> bool {
        !matches!(self.0.kind, Kind::Constant)
    }

    /// Whether this tensor is a trainable parameter.
    pub fn is_param(&self) -> bool {
        matches!(self.0.kind, Kind::Param)
    }

    /// The node's identity: its address, stable while any handle lives.
    fn key(&self) -> usize {
        Rc::as_ptr(&self.0) as *const () as usize
    }

    /// The differentiable inputs of the op that made this node (none for a leaf).
    fn parents(&self) -> impl Iterator<Item = &TapeTensor<F>> {
        let parents = match &self.0.kind {
            Kind::Op { parents, .. } => parents.as_slice(),
            _ => &[],
        };
        parents.iter().flatten()
    }
}

impl<F: Primitives> Clone for TapeTensor<F> {
    fn clone(&self) -> Self {
        TapeTensor(Rc::clone(&self.0))
    }
}

impl<F: Primitives> fmt::Debug for TapeTensor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0.kind {
            Kind::Constant => "constant",
            Kind::Param => "param",
            Kind::Op { .. } => "op",
        };
        write!(f, "TapeTensor {{ kind: {kind}, value: {:?} }}", self.0.value.borrow())
    }
}

impl<F: Primitives> Drop for Node<F> {
    /// Frees the graph behind a node iteratively: the default recursive drop would overflow the
    /// stack on a long chain of ops.
    fn drop(&mut self) {
        let Kind::Op { parents, .. } = &mut self.kind else { return };
        let mut stack: Vec<TapeTensor<F>> = parents.drain(..).flatten().collect();
        while let Some(t) = stack.pop() {
            if let Ok(mut node) = Rc::try_unwrap(t.0)
                && let Kind::Op { parents, .. } = &mut node.kind
            {
                stack.extend(parents.drain(..).flatten());
            }
        }
    }
}

/// The gradients of one [`Autodiff::backward_impl`] call, keyed by parameter node (each entry
/// keeps its parameter's handle, so no other node can take its address while the store lives).
pub struct TapeGrads<F: Primitives> {
    map: BTreeMap<usize, (TapeTensor<F>, F::Tensor)>,
}

impl<F: Primitives> TapeGrads<F> {
    /// How many parameters received a gradient.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no parameter received a gradient.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<F: Primitives> fmt::Debug for TapeGrads<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.map.values().map(|(_, g)| g)).finish()
    }
}

/// The nodes `loss` depends on that require a gradient, each after all of its parents.
fn topological_order<F: Primitives>(loss: &TapeTensor<F>) -> Vec<TapeTensor<F>> {
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    // (node, whether its parents were already pushed)
    let mut stack = vec![(loss.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !seen.insert(node.key()) {
            continue;
        }
        stack.push((node.clone(), true));
        stack.extend(node.parents().filter(|p| !seen.contains(&p.key())).map(|p| (p.clone(), false)));
    }
    order
}

impl<F: Primitives> Primitives for Tape<F> {
    type Tensor = TapeTensor<F>;
    type Device = F::Device;

    fn name_impl(&self) -> &'static str {
        self.inner.name_impl()
    }
    fn device_impl(&self) -> F::Device {
        self.inner.device_impl()
    }
    fn sync_impl(&self) -> Result<()> {
        self.inner.sync_impl()
    }
    fn tensor_f32_impl(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Self::Tensor> {
        Ok(TapeTensor::new(self.inner.tensor_f32_impl(data, shape, dtype)?, Kind::Constant))
    }
    fn tensor_f64_impl(&self, data: &[f64], shape: &[usize], dtype: DType) -> Result<Self::Tensor> {
        Ok(TapeTensor::new(self.inner.tensor_f64_impl(data, shape, dtype)?, Kind::Constant))
    }
    fn tensor_i64_impl(&self, data: &[i64], shape: &[usize]) -> Result<Self::Tensor> {
        Ok(TapeTensor::new(self.inner.tensor_i64_impl(data, shape)?, Kind::Constant))
    }
    fn tensor_bool_impl(&self, data: &[bool], shape: &[usize]) -> Result<Self::Tensor> {
        Ok(TapeTensor::new(self.inner.tensor_bool_impl(data, shape)?, Kind::Constant))
    }
    fn to_host_f32_impl(&self, t: &Self::Tensor) -> Result<Vec<f32>> {
        self.inner.to_host_f32_impl(&t.value())
    }
    fn to_host_f64_impl(&self, t: &Self::Tensor) -> Result<Vec<f64>> {
        self.inner.to_host_f64_impl(&t.value())
    }
    fn to_host_i64_impl(&self, t: &Self::Tensor) -> Result<Vec<i64>> {
        self.inner.to_host_i64_impl(&t.value())
    }
    fn shape_impl(&self, t: &Self::Tensor) -> Vec<usize> {
        self.inner.shape_impl(&t.0.value.borrow())
    }
    fn dtype_impl(&self, t: &Self::Tensor) -> DType {
        self.inner.dtype_impl(&t.0.value.borrow())
    }
    fn full_impl(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Self::Tensor> {
        Ok(TapeTensor::new(self.inner.full_impl(shape, value, dtype)?, Kind::Constant))
    }
    fn unary(&self, op: UnaryOp, x: &Self::Tensor) -> Result<Self::Tensor> {
        let xv = x.value();
        let y = self.inner.unary(op, &xv)?;
        Ok(self.record(y.clone(), &[x], |_| Rule::Unary { op, x: xv, y }))
    }
    fn binary(&self, op: BinaryOp, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        let (av, bv) = (a.value(), b.value());
        let y = self.inner.binary(op, &av, &bv)?;
        Ok(self.record(y.clone(), &[a, b], |_| Rule::Binary { op, a: av, b: bv, y }))
    }
    fn compare(&self, op: CompareOp, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        Ok(TapeTensor::new(self.inner.compare(op, &a.value(), &b.value())?, Kind::Constant))
    }
    fn where_impl(&self, cond: &Self::Tensor, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        let (cv, av, bv) = (cond.value(), a.value(), b.value());
        let y = self.inner.where_impl(&cv, &av, &bv)?;
        let shapes = (self.inner.shape_impl(&av), self.inner.shape_impl(&bv));
        Ok(self.record(y, &[cond, a, b], |_| Rule::Where { cond: cv, a: shapes.0, b: shapes.1 }))
    }
    fn reduce(&self, op: ReduceOp, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        let xv = x.value();
        let y = self.inner.reduce(op, &xv, dim, keepdim)?;
        Ok(self.record(y.clone(), &[x], |_| Rule::Reduce { op, x: xv, y, dim }))
    }
    fn cumsum_impl(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        let y = self.inner.cumsum_impl(&x.value(), dim)?;
        Ok(self.record(y, &[x], |_| Rule::Cumsum { dim }))
    }
    fn sort_impl(
        &self,
        x: &Self::Tensor,
        dim: usize,
        descending: bool,
    ) -> Result<(Self::Tensor, Self::Tensor)> {
        let (values, idx) = self.inner.sort_impl(&x.value(), dim, descending)?;
        let rule = |_: &[bool]| Rule::Sort { idx: idx.clone(), dim };
        Ok((self.record(values, &[x], rule), TapeTensor::new(idx.clone(), Kind::Constant)))
    }
    fn reshape_impl(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor> {
        let xv = x.value();
        let y = self.inner.reshape_impl(&xv, shape)?;
        Ok(self.record(y, &[x], |_| Rule::Reshape { shape: self.inner.shape_impl(&xv) }))
    }
    fn transpose_impl(&self, x: &Self::Tensor, d0: usize, d1: usize) -> Result<Self::Tensor> {
        let y = self.inner.transpose_impl(&x.value(), d0, d1)?;
        Ok(self.record(y, &[x], |_| Rule::Transpose { d0, d1 }))
    }
    fn narrow_impl(&self, x: &Self::Tensor, dim: usize, start: usize, len: usize) -> Result<Self::Tensor> {
        let xv = x.value();
        let y = self.inner.narrow_impl(&xv, dim, start, len)?;
        Ok(self.record(y, &[x], |_| Rule::Narrow { shape: self.inner.shape_impl(&xv), dim, start }))
    }
    fn cat_impl(&self, xs: &[Self::Tensor], dim: usize) -> Result<Self::Tensor> {
        let values: Vec<F::Tensor> = xs.iter().map(TapeTensor::value).collect();
        let y = self.inner.cat_impl(&values, dim)?;
        let inputs: Vec<&TapeTensor<F>> = xs.iter().collect();
        let lens = values.iter().map(|v| self.inner.shape_impl(v)[dim]).collect();
        Ok(self.record(y, &inputs, |_| Rule::Cat { dim, lens }))
    }
    fn index_select_impl(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor> {
        let (xv, iv) = (x.value(), idx.value());
        let y = self.inner.index_select_impl(&xv, dim, &iv)?;
        let shape = self.inner.shape_impl(&xv);
        Ok(self.record(y, &[x, idx], |_| Rule::IndexSelect { shape, dim, idx: iv }))
    }
    fn gather_impl(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor> {
        let (xv, iv) = (x.value(), idx.value());
        let y = self.inner.gather_impl(&xv, dim, &iv)?;
        let shape = self.inner.shape_impl(&xv);
        Ok(self.record(y, &[x, idx], |_| Rule::Gather { shape, dim, idx: iv }))
    }
    fn write_slice_impl(
        &self,
        dst: &Self::Tensor,
        dim: usize,
        start: usize,
        src: &Self::Tensor,
    ) -> Result<()> {
        self.inner.write_slice_impl(&dst.value(), dim, start, &src.value())
    }
    fn matmul_impl(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        let (av, bv) = (a.value(), b.value());
        let y = self.inner.matmul_impl(&av, &bv)?;
        Ok(self.record(y, &[a, b], |_| Rule::Matmul { a: av, b: bv }))
    }
    fn cast_impl(&self, x: &Self::Tensor, dtype: DType) -> Result<Self::Tensor> {
        let xv = x.value();
        let from = self.inner.dtype_impl(&xv);
        let y = self.inner.cast_impl(&xv, dtype)?;
        if !(from.is_float() && dtype.is_float()) {
            return Ok(TapeTensor::new(y, Kind::Constant));
        }
        Ok(self.record(y, &[x], |_| Rule::Cast { from }))
    }
}

impl<F: Primitives> Autodiff for Tape<F> {
    type Grads = TapeGrads<F>;

    fn param_impl(&self, t: &Self::Tensor) -> Result<Self::Tensor> {
        // A copy with storage of its own: `where_(true, t, t)` copies any dtype exactly.
        let v = t.value();
        let all = self.inner.full_impl(&[], 1.0, DType::Bool)?;
        Ok(TapeTensor::new(self.inner.where_impl(&all, &v, &v)?, Kind::Param))
    }
    fn detach_impl(&self, t: &Self::Tensor) -> Result<Self::Tensor> {
        Ok(TapeTensor::new(t.value(), Kind::Constant))
    }
    fn backward_impl(&self, loss: &Self::Tensor) -> Result<Self::Grads> {
        let mut grads = TapeGrads { map: BTreeMap::new() };
        if !loss.requires_grad() {
            return Ok(grads);
        }
        let value = loss.value();
        let seed =
            self.inner.full_impl(&self.inner.shape_impl(&value), 1.0, self.inner.dtype_impl(&value))?;
        let mut pending = BTreeMap::from([(loss.key(), seed)]);
        for node in topological_order(loss).iter().rev() {
            let Some(g) = pending.remove(&node.key()) else { continue };
            match &node.0.kind {
                Kind::Constant => {}
                Kind::Param => {
                    grads.map.insert(node.key(), (node.clone(), g));
                }
                Kind::Op { parents, rule } => {
                    let needs: Vec<bool> = parents.iter().map(Option::is_some).collect();
                    let inputs = rules::vjp(&self.inner, rule, &g, &needs)?;
                    for (p, pg) in parents.iter().zip(inputs) {
                        let (Some(p), Some(pg)) = (p, pg) else { continue };
                        let sum = match pending.remove(&p.key()) {
                            Some(acc) => self.inner.binary(BinaryOp::Add, &acc, &pg)?,
                            None => pg,
                        };
                        pending.insert(p.key(), sum);
                    }
                }
            }
        }
        Ok(grads)
    }
    fn grad_impl(&self, grads: &Self::Grads, param: &Self::Tensor) -> Result<Option<Self::Tensor>> {
        Ok(grads.map.get(&param.key()).map(|(_, g)| TapeTensor::new(g.clone(), Kind::Constant)))
    }
    fn is_param(&self, t: &Self::Tensor) -> bool {
        t.is_param()
    }
    fn requires_grad(&self, t: &Self::Tensor) -> bool {
        t.requires_grad()
    }
    fn assign_param_impl(&self, param: &Self::Tensor, value: &Self::Tensor) -> Result<()> {
        let (v, dtype) = (value.value(), self.inner.dtype_impl(&param.0.value.borrow()));
        let v = if self.inner.dtype_impl(&v) == dtype { v } else { self.inner.cast_impl(&v, dtype)? };
        *param.0.value.borrow_mut() = v;
        Ok(())
    }
    fn set_grad_enabled_impl(&self, enabled: bool) -> bool {
        self.recording.replace(enabled)
    }
}

impl<F: Primitives> Composites for Tape<F> {}

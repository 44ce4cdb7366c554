//! The reference tensor: an `Rc`-shared node of the autodiff graph holding its values in f64.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use orz_core::backend::DType;

/// The vector-Jacobian product of one recorded operation: given the gradient with respect to
/// its result (row-major, the result's shape), the gradient with respect to each parent (in the
/// order of [`Kind::Op`]'s `parents`), `None` for a parent that gets none.
pub(crate) type BackwardFn = Box<dyn Fn(&[f64]) -> Vec<Option<Vec<f64>>>>;

/// How a node came to be, which decides whether and how gradients flow through it.
pub(crate) enum Kind {
    /// Host data, a detached value, or a result recorded with gradients off: a graph leaf that
    /// receives no gradient.
    Constant,
    /// A trainable leaf ([`orz_core::backend::Backend::param`]): gradients are reported for it.
    Param,
    /// The result of an operation on at least one tensor that requires a gradient.
    Op {
        /// The differentiable inputs.
        parents: Vec<Tensor>,
        /// Their vector-Jacobian product.
        backward: BackwardFn,
    },
}

/// One node: identity, shape, dtype, values and provenance.
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
    /// The values, row-major. Behind `RefCell<Rc<..>>` so that `assign_param` and `write_slice`
    /// can replace or modify them in place (copy-on-write: backward closures and reshaped
    /// tensors that share a snapshot keep the old values).
    pub(crate) data: RefCell<Rc<Vec<f64>>>,
    pub(crate) kind: Kind,
}

/// A tensor of the reference backend: a cheap handle (`Rc`) on a graph node. Every dtype is
/// stored as f64 values (I64 exactly, within ±2^53; Bool as 0 and 1); [`Tensor::dtype`] is the
/// dtype it was created with.
#[derive(Clone)]
pub struct Tensor(pub(crate) Rc<Node>);

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Tensor {
    /// A new node; ids are unique across all reference backends of the process.
    pub(crate) fn new(shape: Vec<usize>, dtype: DType, data: Rc<Vec<f64>>, kind: Kind) -> Tensor {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Tensor(Rc::new(Node { id, shape, dtype, data: RefCell::new(data), kind }))
    }

    /// A constant (no gradient) tensor.
    pub(crate) fn constant(shape: Vec<usize>, dtype: DType, data: Vec<f64>) -> Tensor {
        Tensor::new(shape, dtype, Rc::new(data), Kind::Constant)
    }

    /// A snapshot of the values (cheap: shares the storage until it is next modified).
    pub(crate) fn values(&self) -> Rc<Vec<f64>> {
        Rc::clone(&self.0.data.borrow())
    }

    /// Whether gradients flow into this tensor (a parameter, or computed from one).
    pub(crate) fn requires_grad(&self) -> bool {
        !matches!(self.0.kind, Kind::Constant)
    }

    /// The node's unique id (the key of the gradient store).
    pub(crate) fn id(&self) -> u64 {
        self.0.id
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// The dtype it was created with.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.0.shape.iter().product()
    }

    /// A copy of the values, row-major, in f64.
    pub fn to_vec(&self) -> Vec<f64> {
        self.values().to_vec()
    }

    /// Whether this tensor is a trainable parameter.
    pub fn is_param(&self) -> bool {
        matches!(self.0.kind, Kind::Param)
    }
}

impl Drop for Node {
    /// Frees the graph behind a node iteratively: the default recursive drop would overflow the
    /// stack on a long chain of operations.
    fn drop(&mut self) {
        let Kind::Op { parents, .. } = &mut self.kind else { return };
        let mut stack = std::mem::take(parents);
        while let Some(t) = stack.pop() {
            if let Ok(mut node) = Rc::try_unwrap(t.0)
                && let Kind::Op { parents, .. } = &mut node.kind
            {
                stack.append(parents);
            }
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        let kind = match self.0.kind {
            Kind::Constant => "constant",
            Kind::Param => "param",
            Kind::Op { .. } => "op",
        };
        let values = self.values();
        let more = if values.len() > SHOWN { ", .." } else { "" };
        write!(
            f,
            "Tensor {{ id: {}, shape: {:?}, dtype: {}, kind: {kind}, values: {:?}{more} }}",
            self.0.id,
            self.0.shape,
            self.0.dtype,
            &values[..values.len().min(SHOWN)]
        )
    }
}

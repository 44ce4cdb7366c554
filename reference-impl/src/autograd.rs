//! Reverse-mode differentiation over the graph the tensors record.
//!
//! `backward` orders the nodes the loss depends on topologically (iterative depth-first
//! search, so deep graphs cannot overflow the stack), seeds the loss with gradient 1, and walks
//! the order from the loss back to the leaves, calling each node's vector-Jacobian product once
//! all of its consumers have contributed, and accumulating into its parents. Only nodes that
//! require a gradient are visited; gradients of intermediate nodes are dropped once used.

use std::collections::{HashMap, HashSet};

use orz_core::{Error, Result};

use crate::tensor::{Kind, Tensor};

/// The gradients of one `backward` call, keyed by parameter node.
#[derive(Debug, Default)]
pub struct Grads {
    map: HashMap<u64, Tensor>,
}

impl Grads {
    /// The gradient of `param`, if the loss depends on it.
    pub fn get(&self, param: &Tensor) -> Option<&Tensor> {
        self.map.get(&param.id())
    }

    /// How many parameters received a gradient.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no parameter received a gradient.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The nodes `loss` depends on that require a gradient, each after all of its parents.
fn topological_order(loss: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // (node, whether its parents were already pushed)
    let mut stack = vec![(loss.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !seen.insert(node.id()) {
            continue;
        }
        stack.push((node.clone(), true));
        if let Kind::Op { parents, .. } = &node.0.kind {
            for p in parents.iter().filter(|p| p.requires_grad() && !seen.contains(&p.id())) {
                stack.push((p.clone(), false));
            }
        }
    }
    order
}

/// Differentiates `loss` (one float element) with respect to every parameter it depends on.
pub(crate) fn backward(loss: &Tensor) -> Result<Grads> {
    if loss.numel() != 1 || !loss.dtype().is_float() {
        return Err(Error::shape(
            "backward",
            format!(
                "the loss must be one float element, got shape {:?} of dtype {}",
                loss.shape(),
                loss.dtype()
            ),
        ));
    }
    let mut out = Grads::default();
    if !loss.requires_grad() {
        return Ok(out);
    }
    let mut pending: HashMap<u64, Vec<f64>> = HashMap::from([(loss.id(), vec![1.0])]);
    for node in topological_order(loss).iter().rev() {
        let Some(g) = pending.remove(&node.id()) else { continue };
        match &node.0.kind {
            Kind::Constant => {}
            Kind::Param => {
                out.map.insert(node.id(), Tensor::constant(node.shape().to_vec(), node.dtype(), g));
            }
            Kind::Op { parents, backward } => {
                for (p, pg) in parents.iter().zip(backward(&g)) {
                    let Some(pg) = pg else { continue };
                    if !p.requires_grad() {
                        continue;
                    }
                    match pending.get_mut(&p.id()) {
                        Some(acc) => acc.iter_mut().zip(&pg).for_each(|(a, b)| *a += b),
                        None => {
                            pending.insert(p.id(), pg);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

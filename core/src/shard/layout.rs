//! [`UnitLayout`]: how the parameters of one sharding unit (a decoder layer, the embedding, the
//! final norm with its head) lie in one flat f32 vector, padded to a multiple of the world size,
//! and which slice of it each rank owns; and the flatten / unflatten between the parameters and
//! that vector.

use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;

use crate::backend::ops::no_grad;
use crate::backend::{Backend, DType};
use crate::{Error, Result};

/// The flat layout of one unit's parameters: parameter `i` occupies
/// `offsets[i]..offsets[i] + numel(shapes[i])`, the parameters are laid out in order, the
/// vector is zero-padded to `padded` elements (a multiple of the world size), and rank `r` owns
/// `[r · shard_len, (r + 1) · shard_len)` (FSDP's `FlatParameter`, DeepSpeed ZeRO-3's
/// partitioning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitLayout {
    shapes: Vec<Vec<usize>>,
    offsets: Vec<usize>,
    numel: usize,
    padded: usize,
    world: usize,
}

impl UnitLayout {
    /// The layout of parameters with these shapes over `world` ranks. Errors: no parameters, or
    /// a world size of 0.
    pub fn new(shapes: Vec<Vec<usize>>, world: usize) -> Result<Self> {
        const OP: &str = "shard layout";
        if shapes.is_empty() {
            return Err(Error::Empty { op: OP, what: "unit parameters" });
        }
        if world == 0 {
            return Err(Error::invalid(OP, "the world size is 0"));
        }
        let mut offsets = Vec::with_capacity(shapes.len());
        let mut numel = 0;
        for s in &shapes {
            offsets.push(numel);
            numel += s.iter().product::<usize>();
        }
        let padded = numel.div_ceil(world) * world;
        Ok(UnitLayout { shapes, offsets, numel, padded, world })
    }

    /// The parameters' shapes, in order.
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    /// Elements of the parameters (without padding).
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// Elements of the padded flat vector (a multiple of the world size).
    pub fn padded(&self) -> usize {
        self.padded
    }

    /// Elements each rank owns.
    pub fn shard_len(&self) -> usize {
        self.padded / self.world
    }

    /// The slice of the flat vector rank `rank` owns.
    pub fn shard_range(&self, rank: usize) -> Range<usize> {
        let n = self.shard_len();
        rank * n..(rank + 1) * n
    }

    /// The range of parameter `i` in the flat vector.
    pub fn param_range(&self, i: usize) -> Range<usize> {
        let start = self.offsets[i];
        start..start + self.shapes[i].iter().product::<usize>()
    }

    /// The flat f32 vector of `tensors` (one per parameter, in order, each of its shape; any
    /// float dtype, cast to f32; `None` counts as zeros), zero-padded. Records no gradient.
    pub fn flatten<B: Backend>(&self, b: &B, tensors: &[Option<B::Tensor>]) -> Result<B::Tensor> {
        const OP: &str = "shard flatten";
        crate::error::check_len(OP, ("unit parameters", self.shapes.len()), ("tensors", tensors.len()))?;
        no_grad(b, || {
            let mut parts = Vec::with_capacity(tensors.len() + 1);
            for (i, (t, shape)) in tensors.iter().zip(&self.shapes).enumerate() {
                let n = self.param_range(i).len();
                let part = match t {
                    Some(t) => {
                        if &b.shape(t) != shape {
                            return Err(Error::shape(
                                OP,
                                format!("tensor {i} has shape {:?}, its parameter {shape:?}", b.shape(t)),
                            ));
                        }
                        b.reshape(&b.cast(&b.detach(t)?, DType::F32)?, &[n])?
                    }
                    None => b.zeros(&[n], DType::F32)?,
                };
                parts.push(part);
            }
            if self.padded > self.numel {
                parts.push(b.zeros(&[self.padded - self.numel], DType::F32)?);
            }
            if parts.len() == 1 { Ok(parts.remove(0)) } else { b.cat(&parts, 0) }
        })
    }

    /// The parameters' tensors cut from a flat vector of `padded()` elements (any dtype), each
    /// reshaped to its shape. Records no gradient.
    pub fn unflatten<B: Backend>(&self, b: &B, flat: &B::Tensor) -> Result<Vec<B::Tensor>> {
        const OP: &str = "shard unflatten";
        if b.shape(flat) != [self.padded] {
            return Err(Error::shape(
                OP,
                format!("the flat vector has shape {:?}, the unit needs [{}]", b.shape(flat), self.padded),
            ));
        }
        no_grad(b, || {
            (0..self.shapes.len())
                .map(|i| {
                    let r = self.param_range(i);
                    b.reshape(&b.narrow(flat, 0, r.start, r.len())?, &self.shapes[i])
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_padded_vector_in_rank_order() {
        let l = UnitLayout::new(alloc::vec![alloc::vec![2, 3], alloc::vec![5], alloc::vec![]], 4).unwrap();
        assert_eq!((l.numel(), l.padded(), l.shard_len()), (12, 12, 3));
        assert_eq!(l.param_range(1), 6..11);
        assert_eq!(l.param_range(2), 11..12);
        assert_eq!(l.shard_range(3), 9..12);
        let odd = UnitLayout::new(alloc::vec![alloc::vec![7]], 3).unwrap();
        assert_eq!((odd.padded(), odd.shard_len(), odd.shard_range(2)), (9, 3, 6..9));
        assert!(UnitLayout::new(alloc::vec![], 2).is_err());
        assert!(UnitLayout::new(alloc::vec![alloc::vec![1]], 0).is_err());
    }
}

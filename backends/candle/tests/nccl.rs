//! [`orz_candle::nccl::NcclGroup`] on a GPU machine (feature `nccl`; ignored, so CI only builds
//! it): `nccl_group_matches_host_arithmetic` starts one process per rank (this test binary again,
//! running `nccl_rank`), each on its own GPU `cuda:RANK`, and every rank checks the collectives
//! against host arithmetic. NCCL refuses two ranks of one communicator on one GPU ("Duplicate
//! GPU detected"), so the world is 2 on a machine with two GPUs or more and 1 on a machine with
//! one (then the NCCL calls run, as identities); `ORZ_NCCL_TEST_WORLD` overrides it. Run, after
//! `./scripts/build-candle-cuda.sh --nccl`:
//!
//! ```text
//! LD_LIBRARY_PATH=<dir of libcublas.so.13 etc.>:<dir of libnccl.so.2> \
//!   cargo test -p orz-candle --features nccl --test nccl -- --ignored --nocapture
//! ```
#![cfg(feature = "nccl")]
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use orz_candle::Candle;
use orz_candle::candle_core;
use orz_candle::candle_core::cuda_backend::cudarc::driver::CudaContext;
use orz_candle::nccl::NcclGroup;
use orz_candle::rendezvous::TcpRendezvous;
use orz_core::collective::{Collective, ReduceOp};

#[test]
#[ignore = "needs a GPU (two for a world of 2)"]
fn nccl_group_matches_host_arithmetic() {
    let gpus = CudaContext::device_count().unwrap() as usize;
    let world = match std::env::var("ORZ_NCCL_TEST_WORLD") {
        Ok(w) => w.parse().unwrap(),
        Err(_) => gpus.clamp(1, 2),
    };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let exe = std::env::current_exe().unwrap();
    let ranks: Vec<_> = (0..world)
        .map(|rank| {
            Command::new(&exe)
                .args(["nccl_rank", "--exact", "--ignored", "--nocapture"])
                .env("ORZ_NCCL_TEST_RANK", rank.to_string())
                .env("ORZ_NCCL_TEST_WORLDSIZE", world.to_string())
                .env("ORZ_NCCL_TEST_PORT", port.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    for (rank, mut child) in ranks.into_iter().enumerate() {
        assert!(child.wait().unwrap().success(), "rank {rank} of {world} failed (its output is above)");
    }
    println!("NCCL collectives matched host arithmetic on {world} rank(s) ({gpus} GPUs)");
}

/// One rank of [`nccl_group_matches_host_arithmetic`]; does nothing when run on its own.
#[test]
#[ignore = "a rank of nccl_group_matches_host_arithmetic"]
fn nccl_rank() {
    let Ok(rank) = std::env::var("ORZ_NCCL_TEST_RANK") else { return };
    let rank: usize = rank.parse().unwrap();
    let world: usize = std::env::var("ORZ_NCCL_TEST_WORLDSIZE").unwrap().parse().unwrap();
    let port: u16 = std::env::var("ORZ_NCCL_TEST_PORT").unwrap().parse().unwrap();
    let b = Candle::cuda(rank).unwrap();
    let rdv = TcpRendezvous { host: "127.0.0.1".into(), port, timeout: Duration::from_secs(120) };
    let g = NcclGroup::join(&b, &rdv, rank, world).unwrap();
    assert_eq!((g.rank(), g.world_size(), g.engine()), (rank, world, "nccl"));
    let dev = b.candle_device().clone();
    let host = |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let ranks = 0..world;
    let w = world as f64;

    // all_reduce: rank r holds (r + 1) · [1..=6] as a 2×3 tensor, in every float dtype.
    let base: Vec<f64> = (1..=6).map(f64::from).collect();
    let mine: Vec<f64> = base.iter().map(|v| v * (rank + 1) as f64).collect();
    let sum_r = ranks.clone().map(|r| (r + 1) as f64).sum::<f64>();
    for dtype in [DType::F32, DType::BF16, DType::F16, DType::F64] {
        let t = Tensor::from_vec(mine.clone(), (2, 3), &dev).unwrap().to_dtype(dtype).unwrap();
        for (op, factor) in [(ReduceOp::Sum, sum_r), (ReduceOp::Max, w), (ReduceOp::Avg, sum_r / w)] {
            let out = g.all_reduce(&b, &t, op).unwrap();
            assert_eq!((out.dims(), out.dtype()), (&[2usize, 3][..], dtype));
            let want: Vec<f64> = base.iter().map(|v| v * factor).collect();
            assert_eq!(host(&out), want, "all_reduce {op:?} in {dtype:?}");
        }
        assert_eq!(host(&t), mine, "the input is unchanged");
    }

    // reduce_scatter: rank r holds r · 10 + i at position i (world · 2 elements); Sum and Avg.
    let input: Vec<f32> = (0..2 * world).map(|i| (rank * 10 + i) as f32).collect();
    let t = Tensor::from_vec(input, 2 * world, &dev).unwrap();
    let out = g.reduce_scatter(&b, &t, ReduceOp::Sum).unwrap();
    let want: Vec<f64> =
        (2 * rank..2 * rank + 2).map(|i| ranks.clone().map(|r| (r * 10 + i) as f64).sum()).collect();
    assert_eq!(host(&out), want, "reduce_scatter");
    let avg = g.reduce_scatter(&b, &t, ReduceOp::Avg).unwrap();
    assert_eq!(host(&avg), want.iter().map(|v| v / w).collect::<Vec<_>>(), "reduce_scatter avg");
    assert!(g.reduce_scatter(&b, &t.reshape((world, 2)).unwrap(), ReduceOp::Sum).is_err(), "2-D is refused");

    // all_gather (bf16 too): rank r holds r · 100 + [0, 1, 2].
    for dtype in [DType::F32, DType::BF16] {
        let t = Tensor::from_vec((0..3).map(|i| (rank * 100 + i) as f32).collect::<Vec<_>>(), 3, &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let want: Vec<f64> = ranks.clone().flat_map(|r| (0..3).map(move |i| (r * 100 + i) as f64)).collect();
        assert_eq!(host(&g.all_gather(&b, &t).unwrap()), want, "all_gather {dtype:?}");
    }

    // broadcast from the last rank; a non-contiguous input (a transpose) is made contiguous.
    let root = world - 1;
    let t =
        Tensor::from_vec((0..6).map(|i| (rank * 1000 + i) as f32).collect::<Vec<_>>(), (2, 3), &dev).unwrap();
    let tt = t.t().unwrap();
    let want = host(&tt).iter().map(|v| v - (rank * 1000) as f64 + (root * 1000) as f64).collect::<Vec<_>>();
    assert_eq!(host(&g.broadcast(&b, &tt, root).unwrap()), want, "broadcast");
    assert!(g.broadcast(&b, &t, world).unwrap_err().to_string().contains("root"));

    // Host collectives and bytes of different lengths per rank.
    g.barrier().unwrap();
    let stats = [rank as f64 + 0.5, -(rank as f64)];
    let sum0 = ranks.clone().map(|r| r as f64 + 0.5).sum::<f64>();
    let sum1 = ranks.clone().map(|r| -(r as f64)).sum::<f64>();
    assert_eq!(g.all_reduce_host(&stats, ReduceOp::Sum).unwrap(), vec![sum0, sum1]);
    assert_eq!(g.all_reduce_host(&stats, ReduceOp::Max).unwrap(), vec![w - 0.5, 0.0]);
    let gathered: Vec<f64> = ranks.clone().flat_map(|r| [r as f64 + 0.5, -(r as f64)]).collect();
    assert_eq!(g.all_gather_host(&stats).unwrap(), gathered);
    let bytes: Vec<u8> = (0..rank * 3 + 1).map(|i| i as u8).collect();
    let all = g.all_gather_bytes(&bytes).unwrap();
    assert_eq!(
        all,
        ranks.clone().map(|r| (0..r * 3 + 1).map(|i| i as u8).collect::<Vec<_>>()).collect::<Vec<_>>()
    );
    assert_eq!(g.all_gather_bytes(&[]).unwrap(), vec![Vec::<u8>::new(); world]);

    // Refusals name the collective, the rank and what is wrong (no NCCL call is made).
    let cpu = Tensor::ones(3, DType::F32, &Device::Cpu).unwrap();
    let e = g.all_reduce(&b, &cpu, ReduceOp::Sum).unwrap_err().to_string();
    assert!(e.contains(&format!("all_reduce on rank {rank} of {world}")) && e.contains("CUDA tensor"), "{e}");
    let u32s = Tensor::ones(3, DType::U32, &dev).unwrap();
    let e = g.all_gather(&b, &u32s).unwrap_err().to_string();
    assert!(e.contains("U32"), "{e}");
    g.barrier().unwrap();
    println!("rank {rank} of {world}: every NCCL collective matched");
}

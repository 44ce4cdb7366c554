//! The TCP rendezvous that shares NCCL's unique id ([`orz_candle::rendezvous`]), on the CPU:
//! threads play the ranks and exchange a dummy 128-byte blob; the timeout and refusal paths
//! name the rank, the world and the address.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use orz_candle::rendezvous::{MAGIC, TcpRendezvous, fetch, serve};

fn blob() -> Vec<u8> {
    (0..128u8).map(|i| i.wrapping_mul(7)).collect()
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn every_rank_gets_rank_zeros_blob_whatever_the_start_order() {
    let world = 4;
    let rdv = TcpRendezvous { host: "127.0.0.1".into(), port: free_port(), timeout: Duration::from_secs(20) };
    // The other ranks start first and retry until rank 0 listens.
    let others: Vec<_> = (1..world)
        .map(|rank| {
            let rdv = rdv.clone();
            thread::spawn(move || rdv.share(rank, world, || panic!("only rank 0 makes the blob")))
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(rdv.share(0, world, || Ok(blob())).unwrap(), blob());
    for t in others {
        assert_eq!(t.join().unwrap().unwrap(), blob());
    }
}

#[test]
fn a_world_of_one_needs_no_network() {
    let rdv =
        TcpRendezvous { host: "no-such-host.invalid".into(), port: 1, timeout: Duration::from_millis(10) };
    assert_eq!(rdv.share(0, 1, || Ok(blob())).unwrap(), blob());
    let e = rdv.share(2, 2, || Ok(blob())).unwrap_err().to_string();
    assert!(e.contains("rank 2 is not in a world of 2"), "{e}");
}

#[test]
fn a_rank_with_no_server_times_out_naming_itself_and_the_address() {
    let port = free_port();
    let e = fetch("127.0.0.1", port, 2, 3, Duration::from_millis(300)).unwrap_err().to_string();
    assert!(e.starts_with("rendezvous on rank 2 of 3"), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{port}")) && e.contains("no connection within 0.3 s"), "{e}");
}

#[test]
fn rank_zero_times_out_naming_the_missing_ranks() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let one = thread::spawn(move || fetch("127.0.0.1", port, 1, 3, Duration::from_secs(10)));
    // A probe that never says hello is dropped, not counted as a rank.
    let _probe = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let e = serve(&listener, 3, &blob(), Duration::from_millis(800)).unwrap_err().to_string();
    assert!(e.starts_with("rendezvous on rank 0 of 3") && e.contains("ranks [2] did not connect"), "{e}");
    assert_eq!(one.join().unwrap().unwrap(), blob());
}

#[test]
fn a_wrong_world_size_or_rank_is_refused_on_both_sides() {
    for (world, rank, want) in
        [(3, 1, "rank 1 says the world has 3 ranks, rank 0 says 2"), (2, 5, "rank 5 is not a rank 1..2")]
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut hello = MAGIC.to_vec();
            hello.extend_from_slice(&(world as u64).to_le_bytes());
            hello.extend_from_slice(&(rank as u64).to_le_bytes());
            s.write_all(&hello).unwrap();
        });
        let e = serve(&listener, 2, &blob(), Duration::from_secs(10)).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        client.join().unwrap();
    }
    // Through `fetch`, the refusal reaches the client with rank 0's reason.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || serve(&listener, 2, &blob(), Duration::from_secs(10)));
    let e = fetch("127.0.0.1", port, 1, 4, Duration::from_secs(10)).unwrap_err().to_string();
    assert!(
        e.starts_with("rendezvous on rank 1 of 4") && e.contains("refused: rank 1 says the world has 4"),
        "{e}"
    );
    assert!(server.join().unwrap().is_err());
}

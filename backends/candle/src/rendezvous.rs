//! How the ranks of a job share one small blob before they can talk: the 128-byte NCCL unique
//! id that rank 0 creates and every rank passes to `ncclCommInitRank` (module `nccl`). Plain
//! TCP over `std::net`, no NCCL and no GPU: rank 0 listens at the job's address
//! (`MASTER_ADDR:MASTER_PORT`), every other rank connects (retrying until the timeout, so the
//! ranks may start in any order), says which rank of which world it is, and receives the blob.
//! Rank 0 returns once every rank `1..world` has received it; a wrong world size, a rank out of
//! range or a rank that connects twice is refused on both sides.
//!
//! Wire format (little endian): the client sends [`MAGIC`], its world size and its rank (u64
//! each); the server answers a status byte (0: the blob follows, 1: an error message follows),
//! a u32 length and that many bytes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::thread::sleep;
use std::time::{Duration, Instant};

use orz_core::{Error, Result};

/// The first bytes a client sends (format version 1).
pub const MAGIC: &[u8; 8] = b"orzrdv01";

/// The largest blob or message a client accepts (the NCCL id is 128 bytes).
const MAX_PAYLOAD: u32 = 1 << 16;

/// How long rank 0 waits at most for a connection's handshake.
const HELLO: Duration = Duration::from_secs(10);

/// How long a client waits between connection attempts.
const RETRY: Duration = Duration::from_millis(100);

/// Where and how long the ranks of a job meet (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRendezvous {
    /// Rank 0's host, as the other ranks reach it (`MASTER_ADDR`).
    pub host: String,
    /// The port rank 0 listens on (on every interface).
    pub port: u16,
    /// How long every rank waits at most for the others.
    pub timeout: Duration,
}

/// The error of the rendezvous on `rank` of `world`.
fn error(rank: usize, world: usize, message: String) -> Error {
    Error::Collective { op: "rendezvous", rank, world, message }
}

impl TcpRendezvous {
    /// Shares rank 0's blob with every rank: rank 0 calls `make` for it, listens on `port` and
    /// serves it to ranks `1..world`; the others fetch it. Every rank returns the same bytes.
    pub fn share(
        &self,
        rank: usize,
        world: usize,
        make: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        if world == 0 || rank >= world {
            return Err(error(rank, world, format!("rank {rank} is not in a world of {world}")));
        }
        if rank > 0 {
            return fetch(&self.host, self.port, rank, world, self.timeout);
        }
        let blob = make()?;
        if world == 1 {
            return Ok(blob);
        }
        let listener = TcpListener::bind(("0.0.0.0", self.port)).map_err(|e| {
            error(0, world, format!("cannot listen on port {} (for {}): {e}", self.port, self.host))
        })?;
        serve(&listener, world, &blob, self.timeout)?;
        Ok(blob)
    }
}

/// Rank 0's side: serves `blob` on `listener` until every rank `1..world` has received it, or
/// fails after `timeout` naming the ranks that never came. A connection that sends no valid
/// handshake is dropped; one from a wrong world or rank is refused (and fails rank 0 too).
pub fn serve(listener: &TcpListener, world: usize, blob: &[u8], timeout: Duration) -> Result<()> {
    let fail = |m: String| error(0, world, m);
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    let len = u32::try_from(blob.len())
        .ok()
        .filter(|&l| l <= MAX_PAYLOAD)
        .ok_or_else(|| fail(format!("a blob of {} bytes is larger than {MAX_PAYLOAD}", blob.len())))?;
    listener.set_nonblocking(true).map_err(|e| fail(format!("listener at {addr}: {e}")))?;
    let deadline = Instant::now() + timeout;
    let mut served = vec![false; world];
    served[0] = true;
    while served.iter().any(|s| !s) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let missing: Vec<usize> = (0..world).filter(|&r| !served[r]).collect();
                    return Err(fail(format!(
                        "ranks {missing:?} did not connect to {addr} within {:.1} s",
                        timeout.as_secs_f64()
                    )));
                }
                sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => return Err(fail(format!("accepting at {addr}: {e}"))),
        };
        // A connection that is not a rank (a port probe, a stale client) is dropped unanswered.
        let remaining =
            deadline.saturating_duration_since(Instant::now()).clamp(Duration::from_millis(1), HELLO);
        let Ok(mut conn) = Conn::new(stream, remaining) else { continue };
        let Ok((their_world, their_rank)) = conn.hello() else { continue };
        let refusal = if their_world != world as u64 {
            Some(format!("rank {their_rank} says the world has {their_world} ranks, rank 0 says {world}"))
        } else if their_rank == 0 || their_rank >= world as u64 {
            Some(format!("rank {their_rank} is not a rank 1..{world}"))
        } else if served[their_rank as usize] {
            Some(format!("rank {their_rank} connected twice"))
        } else {
            None
        };
        if let Some(m) = refusal {
            // Best effort: the client reports the message too; rank 0 fails with it either way.
            let _ = conn.reply(1, m.as_bytes());
            return Err(fail(m));
        }
        conn.reply(0, &blob[..len as usize])
            .map_err(|e| fail(format!("sending to rank {their_rank} at {addr}: {e}")))?;
        served[their_rank as usize] = true;
    }
    Ok(())
}

/// A rank's side: connects to rank 0 at `host:port` (retrying until `timeout`) and returns the
/// blob it serves.
pub fn fetch(host: &str, port: u16, rank: usize, world: usize, timeout: Duration) -> Result<Vec<u8>> {
    let fail = |m: String| error(rank, world, format!("rank 0 at {host}:{port}: {m}"));
    let deadline = Instant::now() + timeout;
    let stream = loop {
        let attempt = (host, port).to_socket_addrs().map_err(|e| e.to_string()).and_then(|mut addrs| {
            let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            match addrs.next() {
                Some(a) => TcpStream::connect_timeout(&a, remaining.min(Duration::from_secs(5)))
                    .map_err(|e| e.to_string()),
                None => Err(format!("{host} resolves to no address")),
            }
        });
        let last = match attempt {
            Ok(s) => break s,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(fail(format!("no connection within {:.1} s (last: {last})", timeout.as_secs_f64())));
        }
        sleep(RETRY);
    };
    let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut conn = Conn::new(stream, remaining).map_err(|e| fail(e.to_string()))?;
    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&(world as u64).to_le_bytes());
    hello.extend_from_slice(&(rank as u64).to_le_bytes());
    conn.0.write_all(&hello).map_err(|e| fail(format!("sending the handshake: {e}")))?;
    let (status, payload) = conn.answer().map_err(|e| fail(format!("reading the answer: {e}")))?;
    match status {
        0 => Ok(payload),
        _ => Err(fail(format!("refused: {}", String::from_utf8_lossy(&payload)))),
    }
}

/// One connection with read and write timeouts.
struct Conn(TcpStream);

impl Conn {
    fn new(stream: TcpStream, timeout: Duration) -> std::io::Result<Self> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn(stream))
    }

    /// The client's world size and rank (after checking the magic).
    fn hello(&mut self) -> std::io::Result<(u64, u64)> {
        let mut buf = [0u8; 24];
        self.0.read_exact(&mut buf)?;
        if &buf[..8] != MAGIC {
            return Err(std::io::Error::other("not an orz rendezvous client"));
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[i..i + 8]);
            u64::from_le_bytes(w)
        };
        Ok((word(8), word(16)))
    }

    fn reply(&mut self, status: u8, payload: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX).min(MAX_PAYLOAD);
        self.0.write_all(&[status])?;
        self.0.write_all(&len.to_le_bytes())?;
        self.0.write_all(&payload[..len as usize])?;
        self.0.flush()
    }

    fn answer(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.0.read_exact(&mut head)?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_PAYLOAD {
            return Err(std::io::Error::other(format!("an answer of {len} bytes is too long")));
        }
        let mut payload = vec![0u8; len as usize];
        self.0.read_exact(&mut payload)?;
        Ok((head[0], payload))
    }
}

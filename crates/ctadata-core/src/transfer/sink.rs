//! A writer on its own thread: the async side hands over received chunks without copying
//! them, the thread gathers them into large blocks and writes those with plain blocking
//! calls, in parallel with the network. (`tokio::fs::File` and `tokio::io::Stdout` copy
//! every write into a buffer of their own and hand it to the blocking pool.)

use std::io::Write;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Blocks of this size are written at once.
const BLOCK: usize = 1 << 20;
/// Chunks queued between the network and the thread (bounds memory: chunks, not blocks).
const QUEUE: usize = 16;

/// A [`Write`] target fed from async code through a dedicated thread.
pub struct ThreadWriter<W: Write + Send + 'static> {
    tx: Option<mpsc::Sender<Bytes>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<W>>>,
}

impl<W: Write + Send + 'static> ThreadWriter<W> {
    /// Starts the thread that writes to `out`.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("cta-data-writer".into())
            .spawn(move || {
                let mut block: Vec<u8> = Vec::with_capacity(BLOCK);
                while let Some(chunk) = rx.blocking_recv() {
                    if block.is_empty() && chunk.len() >= BLOCK {
                        out.write_all(&chunk)?;
                        continue;
                    }
                    block.extend_from_slice(&chunk);
                    if block.len() >= BLOCK {
                        out.write_all(&block)?;
                        block.clear();
                    }
                }
                out.write_all(&block)?;
                out.flush()?;
                Ok(out)
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues one chunk. An error means the thread stopped on a write error: call
    /// [`finish`](Self::finish) for it.
    pub async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(closed)?;
        tx.send(chunk).await.map_err(|_| closed())
    }

    /// Writes what is queued, flushes, and gives the target back (or the first write error).
    pub async fn finish(mut self) -> std::io::Result<W> {
        self.tx = None;
        let thread = self.thread.take().ok_or_else(closed)?;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(std::io::Error::other)?
            .map_err(|_| std::io::Error::other("the writer thread panicked"))?
    }
}

impl<W: Write + Send + 'static> Drop for ThreadWriter<W> {
    fn drop(&mut self) {
        // Closing the queue lets the thread write what it has and end on its own.
        self.tx = None;
    }
}

/// Feeds `stream` into `out`, showing every chunk to `each` first. Stops at the end, at an
/// error of the stream (returned), or when the writer stopped (its error comes from
/// [`ThreadWriter::finish`]).
pub async fn pump<W: Write + Send + 'static>(
    stream: &mut crate::backend::ByteStream,
    out: &mut ThreadWriter<W>,
    mut each: impl FnMut(&Bytes),
) -> Option<crate::Error> {
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                each(&chunk);
                if out.write(chunk).await.is_err() {
                    return None;
                }
            }
            Err(e) => return Some(e),
        }
    }
    None
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the writer stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_arrive_in_order_and_whole() {
        let mut w = ThreadWriter::new(Vec::new()).unwrap();
        let mut want = Vec::new();
        for i in 0..3000u32 {
            let chunk: Vec<u8> = (0..(i % 700)).map(|j| (i ^ j) as u8).collect();
            want.extend_from_slice(&chunk);
            w.write(Bytes::from(chunk)).await.unwrap();
        }
        w.write(Bytes::from(vec![7u8; 3 * BLOCK])).await.unwrap();
        want.extend(std::iter::repeat_n(7u8, 3 * BLOCK));
        assert_eq!(w.finish().await.unwrap(), want);
    }

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "disk full",
            ))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_write_error_is_reported_by_finish() {
        let mut w = ThreadWriter::new(Full).unwrap();
        // The error surfaces at the latest when the thread writes its block.
        for _ in 0..64 {
            if w.write(Bytes::from(vec![1u8; BLOCK])).await.is_err() {
                break;
            }
        }
        let e = w.finish().await.err().expect("an error");
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
    }
}

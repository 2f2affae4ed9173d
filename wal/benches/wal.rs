//! WAL throughput with Sync durability: appends/s, fsyncs and bytes written per record,
//! for 1, 16 and 256 concurrent appenders. Run: `cargo bench -p mqgate-broker-lite --bench wal`.
//!
//! The WAL directory is created under `$WAL_BENCH_DIR` (default: the system temp dir); point
//! it at the disk you care about (tmpfs makes fsync free).

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqgate_wal::{Wal, WalOptions};

/// Payload size of every record (a small QoS 1 publish).
const RECORD_BYTES: usize = 100;

/// How long each configuration runs.
const RUN_FOR: Duration = Duration::from_secs(3);

fn main() -> Result<(), Box<dyn Error>> {
    let base: PathBuf = std::env::var_os("WAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("WAL bench, Sync durability, {RECORD_BYTES}-byte records, {RUN_FOR:?} per row, dir under {}", base.display());
    println!(
        "{:>10} {:>12} {:>14} {:>16} {:>16}",
        "appenders", "appends/s", "fsyncs/record", "bytes/record", "records/batch"
    );
    for appenders in [1usize, 16, 256] {
        let dir = tempfile::Builder::new()
            .prefix("wal-bench")
            .tempdir_in(&base)?;
        runtime.block_on(run(dir.path().to_path_buf(), appenders))?;
    }
    Ok(())
}

async fn run(dir: PathBuf, appenders: usize) -> Result<(), Box<dyn Error>> {
    let (wal, _) = Wal::open(&dir, WalOptions::default()).await?;
    let before = wal.stats();
    let started = Instant::now();
    let deadline = started + RUN_FOR;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..appenders {
        let wal = wal.clone();
        tasks.spawn(async move {
            let record = Bytes::from(vec![0x5a; RECORD_BYTES]);
            while Instant::now() < deadline {
                wal.append(record.clone()).await?;
            }
            Ok::<(), mqgate_wal::WalError>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let elapsed = started.elapsed();
    let after = wal.stats();
    wal.close().await?;
    let records = (after.records - before.records).max(1) as f64;
    println!(
        "{:>10} {:>12.0} {:>14.3} {:>16.1} {:>16.1}",
        appenders,
        records / elapsed.as_secs_f64(),
        (after.fsyncs - before.fsyncs) as f64 / records,
        (after.bytes_written - before.bytes_written) as f64 / records,
        records / (after.batches - before.batches).max(1) as f64,
    );
    Ok(())
}

//! The floor of a gzip install, for bench/run: one thread inflating a gzip file with the zlib-rs
//! build pkg itself uses (the same flate2 features), the output counted and thrown away — no
//! hashing, no tar, no files.

use std::io::{BufReader, Read};

fn main() -> std::io::Result<()> {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: inflate FILE.gz");
        std::process::exit(2);
    };
    let file = BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
    let mut gz = flate2::read::MultiGzDecoder::new(file);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match gz.read(&mut buf)? {
            0 => break,
            n => total += n as u64,
        }
    }
    println!("{total}");
    Ok(())
}

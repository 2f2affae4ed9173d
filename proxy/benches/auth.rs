//! Connect-rate figures for password checks: cold (every login hashes, argon2id with the
//! OWASP defaults, and mosquitto `$7$`) versus warm (the success cache). Run with
//! `cargo bench -p mqgate-proxy --bench auth`; prints logins per second.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use mqgate_proxy::password::{Argon2Cost, PasswordFile, StoredHash, Verifier, VerifierSettings};

const SEVEN: &str = "$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4ucgZ2uodxfQ==";
const ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn logins(v: &Verifier, user: &str, password: &[u8], n: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let v = v.clone();
        let (user, password) = (user.to_owned(), password.to_vec());
        tasks.push(tokio::spawn(async move {
            v.verify(&user, &password, ADDR).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn verifier(file: &str, cache: bool, concurrent: usize) -> Verifier {
    let settings = VerifierSettings {
        cache_ttl: if cache {
            Duration::from_secs(300)
        } else {
            Duration::ZERO
        },
        max_concurrent: concurrent,
        rehash_on_login: false,
        ..VerifierSettings::default()
    };
    Verifier::new(
        PasswordFile::parse(file, Path::new("bench")).unwrap(),
        None,
        settings,
    )
    .unwrap()
}

#[tokio::main]
async fn main() {
    let argon = StoredHash::new_argon2id(b"secret", Argon2Cost::default()).unwrap();
    let argon_file = format!("dev:{}\n", argon.encode());
    let seven_file = format!("dev:{SEVEN}\n");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("password verification, {cores} cores");
    let mut cold = 0.0;
    for concurrent in [1, 2] {
        cold = logins(
            &verifier(&argon_file, false, concurrent),
            "dev",
            b"secret",
            20,
        )
        .await;
        println!("argon2id m=19456 t=2 p=1, cold, {concurrent} at once: {cold:>10.1} logins/s");
    }
    let cold7 = logins(&verifier(&seven_file, false, 2), "dev", b"secret", 2000).await;
    println!("mosquitto $7$ (101 it.), cold, 2 at once:   {cold7:>10.1} logins/s");
    let v = verifier(&argon_file, true, 2);
    logins(&v, "dev", b"secret", 1).await;
    let warm = logins(&v, "dev", b"secret", 1000).await;
    println!("argon2id, cached (reconnect storm of 1000): {warm:>10.1} logins/s");
    println!(
        "1000-device argon2id storm: cold {:.1} s, cached {:.4} s",
        1000.0 / cold,
        1000.0 / warm
    );
}

//! Tests of hash decoding and verification, with vectors made by Python's hashlib.

use super::*;

/// Made with: `hashlib.pbkdf2_hmac('sha512', b'secret', b'0123456789ab', 101, 64)`, base64.
const SEVEN_12: &str = "$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4ucgZ2uodxfQ==";
/// Same with a 64-byte salt `bytes(range(64))` and 1000 iterations (mosquitto 2.1 style).
const SEVEN_64: &str = "$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$j5aX3DstWRgO5cjjfvKvsf7Z/KK812T4wGDMih+DCHQg8P7++fmj4sZcMp1smkEafZL0QZ29tE5ezahL/nyffw==";
/// `hashlib.sha512(b'secret' + b'abcdefghijkl')`.
const SIX: &str = "$6$YWJjZGVmZ2hpamts$6i93SkOMf6fc41fymirTPrapd0oWBaT1tTlLItfP4seDAu6aexpm5rgu5nXJd6844jBYqiqRNRizDJXvI7dzHA==";

const CHEAP: Argon2Cost = Argon2Cost {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

#[test]
fn pbkdf2_vectors_verify() {
    for v in [SEVEN_12, SEVEN_64] {
        let h = StoredHash::parse(v).unwrap();
        assert!(h.verify(b"secret"), "{v}");
        assert!(!h.verify(b"secreT"));
        assert!(!h.verify(b""));
        assert_eq!(h.encode(), v, "re-encoding is byte-identical");
        assert!(h.needs_rehash(CHEAP));
    }
}

#[test]
fn sha512_vector_verifies() {
    let h = StoredHash::parse(SIX).unwrap();
    assert!(h.verify(b"secret"));
    assert!(!h.verify(b"secret "));
    assert_eq!(h.encode(), SIX);
}

#[test]
fn python_made_pbkdf2_with_random_salt_verifies() {
    let script = "import hashlib,base64,os\n\
        s=os.urandom(64)\n\
        print('$7$5$'+base64.b64encode(s).decode()+'$'+base64.b64encode(hashlib.pbkdf2_hmac('sha512',b'p\\xc3\\xa4ss',s,5,64)).decode())";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let h = StoredHash::parse(line.trim()).unwrap();
    assert!(h.verify("päss".as_bytes()));
    assert!(!h.verify(b"pass"));
}

#[test]
fn mosquitto_argon2id_with_64_byte_salt_verifies() {
    // What mosquitto 2.1 writes: 64-byte salt, 64-byte tag (here with a cheap cost).
    let salt: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(7)).collect();
    let mut tag = [0u8; 64];
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(64, 1, 1, Some(64)).unwrap(),
    )
    .hash_password_into(b"hunter2", &salt, &mut tag)
    .unwrap();
    let line = format!(
        "$argon2id$v=19$m=64,t=1,p=1${}${}",
        PHC_B64.encode(&salt),
        PHC_B64.encode(tag)
    );
    assert!(line.len() > 64 + 86, "a salt of 86 base64 chars");
    let h = StoredHash::parse(&line).unwrap();
    assert!(h.verify(b"hunter2"));
    assert!(!h.verify(b"hunter3"));
    assert_eq!(h.encode(), line);
}

#[test]
fn new_argon2id_round_trips_and_salts_differ() {
    let a = StoredHash::new_argon2id(b"pw", CHEAP).unwrap();
    let b = StoredHash::new_argon2id(b"pw", CHEAP).unwrap();
    assert_ne!(a.encode(), b.encode());
    let parsed = StoredHash::parse(&a.encode()).unwrap();
    assert_eq!(parsed, a);
    assert!(parsed.verify(b"pw"));
    assert!(!parsed.verify(b"pW"));
    assert!(!parsed.needs_rehash(CHEAP));
    assert!(parsed.needs_rehash(Argon2Cost {
        iterations: 2,
        ..CHEAP
    }));
}

#[test]
fn malformed_hashes_are_refused() {
    for bad in [
        "plaintext",
        "$7$0$MDEyMzQ1Njc4OWFi$AAAA",
        "$7$x$MDEyMzQ1Njc4OWFi$AAAA",
        "$7$101$c2hvcnQ=$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4ucgZ2uodxfQ==",
        "$7$101$MDEyMzQ1Njc4OWFi$c2hvcnQ=",
        "$7$101$MDEyMzQ1Njc4OWFi",
        "$6$!!!$AAAA",
        "$argon2id$v=19$m=64,t=1$AAAAAAAAAAA$AAAAAAAAAAA",
        "$argon2id$v=18$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAA",
        "$argon2id$v=19$m=64,t=1,p=1,x=2$AAAAAAAAAAA$AAAAAAAAAAA",
        "$argon2id$v=19$m=1,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAA",
        "$argon2id$v=19$m=64,t=1,p=1$AAAA$AAAAAAAAAAA",
        "$argon2i$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAA",
    ] {
        assert!(StoredHash::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn debug_redacts_salt_and_digest() {
    let h = StoredHash::parse(SEVEN_12).unwrap();
    let dbg = format!("{h:?}");
    assert!(dbg.contains("101"));
    assert!(!dbg.contains("MDEy") && !dbg.contains("48,"), "{dbg}");
}

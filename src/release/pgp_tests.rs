use super::*;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RELEASE_KEY_ID: &str = "199E2F91FD431D51";
const RELEASE_DIGEST: &str = "sha256:0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363";
const RELEASE_REF: &str = "quay.io/openshift-release-dev/ocp-release:4.15.0-x86_64";

/// The shared release-signature data: `../shared/data` beside the checkout, or
/// `IMAGESET_SHARED_DATA`.
fn data(rel: &str) -> PathBuf {
    let base = std::env::var_os("IMAGESET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    base.join("release/signatures").join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn keyring(files: &[&str]) -> Keyring {
    let mut bytes = Vec::new();
    for f in files {
        bytes.extend(read(f));
    }
    Keyring::parse(&bytes).expect("keys parse")
}

fn release_keyring() -> Keyring {
    keyring(&["redhat-public-keys/verifier-public-key-redhat-release"])
}

fn real_signature() -> Vec<u8> {
    read("oc-mirror-e2e-signature-1")
}

/// A new-format packet with a 4-byte length.
fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    [&[0xc0 | tag, 0xff][..], &len, body].concat()
}

/// Re-encodes packets without compression.
fn flatten(message: &[u8]) -> Vec<Packet> {
    let mut packets = parse_packets(message).unwrap();
    if let [only] = packets.as_slice()
        && only.tag == 8
    {
        packets = parse_packets(&decompress(&only.body).unwrap()).unwrap();
    }
    packets
}

fn encode(packets: &[Packet]) -> Vec<u8> {
    packets.iter().flat_map(|p| packet(p.tag, &p.body)).collect()
}

/// Drops the unhashed subpacket area (where the issuer usually is) of a v4 signature body.
fn strip_unhashed(body: &[u8]) -> Vec<u8> {
    let hashed_end = 6 + usize::from(u16::from_be_bytes([body[4], body[5]]));
    let unhashed_len = usize::from(u16::from_be_bytes([body[hashed_end], body[hashed_end + 1]]));
    [&body[..hashed_end], &[0, 0], &body[hashed_end + 2 + unhashed_len..]].concat()
}

fn assert_unknown_signer(result: Result<Verified, PgpError>, want: &str) {
    match result {
        Err(PgpError::UnknownSigner { key_id }) => assert_eq!(key_id, want),
        other => panic!("expected UnknownSigner {want}, got {other:?}"),
    }
}

#[test]
fn real_release_signature_verifies() {
    let verified = release_keyring().verify(&real_signature()).expect("verifies");
    assert_eq!(verified.key_id, RELEASE_KEY_ID);
    assert_eq!(verified.created, Some(1_708_963_212));
    let json = String::from_utf8(verified.payload).unwrap();
    assert!(json.starts_with("{\"critical\": {\"image\": {\"docker-manifest-digest\": "), "{json}");
    assert!(json.contains(&format!("\"docker-manifest-digest\": \"{RELEASE_DIGEST}\"")), "{json}");
    assert!(json.contains(&format!("\"docker-reference\": \"{RELEASE_REF}\"")), "{json}");
    assert!(json.contains("\"type\": \"atomic container signature\""), "{json}");
}

#[test]
fn custom_key_file_bundles_the_release_key() {
    // The oc-mirror "custom" key file holds release key 2 and beta key 2, so it verifies too.
    let keys = keyring(&["oc-mirror-custom-ocp-sig-key.asc"]);
    assert_eq!(keys.key_ids(), [RELEASE_KEY_ID, "938A80CAF21541EB"]);
    assert_eq!(keys.verify(&real_signature()).unwrap().key_id, RELEASE_KEY_ID);
}

#[test]
fn other_keys_report_unknown_signer() {
    let keys = keyring(&[
        "redhat-public-keys/verifier-public-key-redhat-beta-2",
        "redhat-public-keys/verifier-public-key-redhat-release-auxiliary",
    ]);
    let err = keys.verify(&real_signature()).unwrap_err();
    assert!(err.to_string().contains(RELEASE_KEY_ID), "{err}");
    assert_unknown_signer(Err(err), RELEASE_KEY_ID);
}

#[test]
fn all_key_files_parse() {
    let cases: [(&str, &[&str]); 4] = [
        ("redhat-public-keys/verifier-public-key-redhat-beta-2", &["938A80CAF21541EB"]),
        ("redhat-public-keys/verifier-public-key-redhat-release", &[RELEASE_KEY_ID]),
        ("redhat-public-keys/verifier-public-key-redhat-release-auxiliary", &["F76F66C3D4082792", "81C640F91B5584D3"]),
        ("oc-mirror-custom-ocp-sig-key.asc", &[RELEASE_KEY_ID, "938A80CAF21541EB"]),
    ];
    let mut all = keyring(&[cases[0].0]);
    for (file, ids) in cases {
        let keys = keyring(&[file]);
        assert_eq!(keys.key_ids(), ids, "{file}");
        all.extend(keys);
    }
    // Several concatenated armored blocks in one input, and extend() without duplicates.
    let concatenated = keyring(&[cases[0].0, cases[1].0, cases[2].0, cases[3].0]);
    assert_eq!(concatenated.key_ids(), all.key_ids());
    assert_eq!(all.key_ids().len(), 4);
    assert!(format!("{all:?}").contains("81C640F91B5584D3"));
}

#[test]
fn armor_checksum_and_framing_are_checked() {
    let text = String::from_utf8(read("redhat-public-keys/verifier-public-key-redhat-release")).unwrap();
    let bad_crc = text.replace("=zbHE", "=zbHF");
    assert!(matches!(Keyring::parse(bad_crc.as_bytes()), Err(PgpError::Malformed(m)) if m.contains("checksum")));
    let no_crc = text.replace("=zbHE\n", "");
    assert_eq!(Keyring::parse(no_crc.as_bytes()).unwrap().key_ids(), [RELEASE_KEY_ID]);
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(Keyring::parse(crlf.as_bytes()).unwrap().key_ids(), [RELEASE_KEY_ID]);
    let no_end = text.replace("-----END PGP PUBLIC KEY BLOCK-----", "");
    assert!(matches!(Keyring::parse(no_end.as_bytes()), Err(PgpError::Malformed(_))));
    assert!(matches!(Keyring::parse(b"hello"), Err(PgpError::Malformed(_))));
    assert!(matches!(Keyring::parse(b""), Err(PgpError::Malformed(_))));
    // A key-less but well-formed input (a user ID packet only).
    assert!(matches!(Keyring::parse(&packet(13, b"Nobody")), Err(PgpError::NoUsableKey(_))));
}

#[test]
fn flipped_literal_byte_is_refused() {
    let keys = release_keyring();
    let mut packets = flatten(&real_signature());
    assert_eq!(packets.iter().map(|p| p.tag).collect::<Vec<_>>(), [4, 11, 2]);
    assert_eq!(keys.verify(&encode(&packets)).unwrap().key_id, RELEASE_KEY_ID);
    let header = packets[1].body.len() - keys.verify(&encode(&packets)).unwrap().payload.len();
    for i in header..packets[1].body.len() {
        packets[1].body[i] ^= 0x20;
        let result = keys.verify(&encode(&packets));
        assert!(matches!(result, Err(PgpError::BadSignature { ref key_id }) if key_id == RELEASE_KEY_ID), "{i}");
        packets[1].body[i] ^= 0x20;
    }
    // Every single-byte change of the real (compressed) file fails as well.
    let original = real_signature();
    for i in 0..original.len() {
        let mut message = original.clone();
        message[i] ^= 0x01;
        // The one-pass-signature packet is not authenticated (and is ignored), so a change
        // there may still verify; the payload itself can never change.
        if let Ok(verified) = keys.verify(&message) {
            assert_eq!(verified.payload, keys.verify(&original).unwrap().payload, "flipping byte {i}");
        }
    }
}

#[test]
fn truncated_messages_fail_without_panicking() {
    let keys = release_keyring();
    let original = real_signature();
    let flat = encode(&flatten(&original));
    for message in [&original, &flat] {
        for len in 0..message.len() {
            assert!(keys.verify(&message[..len]).is_err(), "prefix of {len} bytes verified");
        }
    }
    let key = read("oc-mirror-custom-ocp-sig-key.asc");
    for len in 0..key.len() {
        let _ = Keyring::parse(&key[..len]);
    }
}

#[test]
fn garbage_fails_without_panicking() {
    let keys = release_keyring();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..3000 {
        let len = (next() % 600) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Give some inputs plausible headers so parsing goes deeper.
        let prefixes: [&[u8]; 5] =
            [b"", &[0xa3, 0x01], &[0xa3, 0x02, 0x78], &[0x90, 0x0d], b"-----BEGIN PGP MESSAGE-----\n"];
        bytes.splice(0..0, prefixes[round % prefixes.len()].iter().copied());
        assert!(keys.verify(&bytes).is_err());
        assert!(Keyring::parse(&bytes).is_err());
    }
}

#[test]
fn message_structure_is_enforced() {
    let keys = release_keyring();
    let packets = flatten(&real_signature());
    let with = |extra: Vec<u8>| [encode(&packets), extra].concat();
    // Marker packets are ignored; other trailing packets are refused.
    assert!(keys.verify(&with(packet(10, b"PGP"))).is_ok());
    assert!(matches!(keys.verify(&with(packet(13, b"x"))), Err(PgpError::Malformed(_))));
    assert!(matches!(keys.verify(&with(encode(&packets[1..2]))), Err(PgpError::Malformed(_))));
    // No signature packet, or no literal data.
    assert!(matches!(keys.verify(&encode(&packets[..2])), Err(PgpError::NotSigned)));
    assert!(matches!(keys.verify(&encode(&packets[2..])), Err(PgpError::Malformed(_))));
    // Trailing bytes after the compressed stream.
    assert!(matches!(keys.verify(&[real_signature(), vec![0]].concat()), Err(PgpError::Malformed(_))));
    // Signature before the literal data (no one-pass packet) is fine.
    let reordered = [packet(2, &packets[2].body), packet(11, &packets[1].body)].concat();
    assert_eq!(keys.verify(&reordered).unwrap().key_id, RELEASE_KEY_ID);
    // Uncompressed, zlib and bzip2 compressed-data packets.
    let inner = encode(&packets);
    let stored = packet(8, &[&[0][..], &inner].concat());
    assert!(keys.verify(&stored).is_ok());
    let mut z = flate2::write::ZlibEncoder::new(vec![2], flate2::Compression::default());
    z.write_all(&inner).unwrap();
    assert!(keys.verify(&packet(8, &z.finish().unwrap())).is_ok());
    assert!(matches!(keys.verify(&packet(8, &[3, 0x42])), Err(PgpError::Unsupported(_))));
    assert!(matches!(keys.verify(&packet(8, &[&[0][..], &stored].concat())), Err(PgpError::Unsupported(_))));
}

#[test]
fn decompression_bomb_is_refused() {
    let mut z = flate2::write::DeflateEncoder::new(vec![1], flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..17 {
        z.write_all(&zeros).unwrap();
    }
    let message = packet(8, &z.finish().unwrap());
    let err = release_keyring().verify(&message).unwrap_err();
    assert!(matches!(err, PgpError::Unsupported(ref m) if m.contains("16 MiB")), "{err}");
}

#[test]
fn signature_without_issuer_tries_every_key() {
    let keys = keyring(&["oc-mirror-custom-ocp-sig-key.asc", "redhat-public-keys/verifier-public-key-redhat-beta-2"]);
    let mut packets = flatten(&real_signature());
    packets[2].body = strip_unhashed(&packets[2].body);
    assert_eq!(keys.verify(&encode(&packets)).unwrap().key_id, RELEASE_KEY_ID);
    let others = keyring(&["redhat-public-keys/verifier-public-key-redhat-beta-2"]);
    let err = others.verify(&encode(&packets)).unwrap_err();
    assert!(matches!(err, PgpError::BadSignature { ref key_id } if key_id == "(no issuer)"), "{err}");
}

#[test]
fn non_minimal_signature_mpi_is_accepted() {
    // MPIs with leading zero bytes must be stripped then re-padded to the modulus length.
    let mut packets = flatten(&real_signature());
    let body = &packets[2].body;
    let mpi = body.len() - 512 - 2;
    let bits = u16::from_be_bytes([body[mpi], body[mpi + 1]]) + 16;
    packets[2].body = [&body[..mpi], &bits.to_be_bytes(), &[0, 0], &body[mpi + 2..]].concat();
    assert!(release_keyring().verify(&encode(&packets)).is_ok());
}

/// gpg with a throw-away home directory; its agent is stopped on drop.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Gpg {
        Gpg { home: tempfile::tempdir().unwrap() }
    }

    fn run(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run gpg ({e}): install it with `apt-get install gnupg`"));
        let mut stdin = child.stdin.take().unwrap();
        let output = std::thread::scope(|s| {
            s.spawn(move || stdin.write_all(input));
            child.wait_with_output().unwrap()
        });
        assert!(output.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    }

    /// Creates an RSA-2048 signing key and returns its fingerprint.
    fn generate(&self, uid: &str) -> String {
        self.run(&["--quick-gen-key", uid, "rsa2048", "sign", "never"], b"");
        self.fingerprints(uid)[0].clone()
    }

    /// Fingerprints of the key with this user ID, primary key first.
    fn fingerprints(&self, uid: &str) -> Vec<String> {
        let listing = String::from_utf8(self.run(&["--with-colons", "--list-keys", uid], b"")).unwrap();
        listing.lines().filter_map(|l| l.strip_prefix("fpr:")).map(|l| l.trim_matches(':').to_string()).collect()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").env("GNUPGHOME", self.home.path()).args(["--kill", "gpg-agent"]).status();
    }
}

#[test]
fn gpg_signatures_verify() {
    let gpg = Gpg::new();
    let fpr = gpg.generate("Test <t@example.com>");
    let key_id = &fpr[24..];
    let armored = Keyring::parse(&gpg.run(&["--armor", "--export", &fpr], b"")).unwrap();
    assert_eq!(armored.key_ids(), [key_id]);
    let keys = Keyring::parse(&gpg.run(&["--export", &fpr], b"")).unwrap();
    assert_eq!(keys.key_ids(), [key_id]);

    let payload = br#"{"critical": {"type": "atomic container signature"}}"#;
    let file = gpg.home.path().join("payload.json");
    std::fs::write(&file, payload).unwrap();
    let file = file.to_str().unwrap();
    let cases: [&[&str]; 9] = [
        &["--sign"],
        &["--sign", "--compress-algo", "zip"],
        &["--sign", "--compress-algo", "zlib"],
        &["--sign", "--compress-algo", "none"],
        &["--sign", "--digest-algo", "SHA256"],
        &["--sign", "--digest-algo", "SHA384"],
        &["--sign", "--digest-algo", "SHA512"],
        &["--armor", "--sign"],
        &["--sign", "--compress-algo", "none", "--output", "-", file],
    ];
    for args in cases {
        let message = gpg.run(args, payload);
        let verified = keys.verify(&message).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!((verified.payload.as_slice(), verified.key_id.as_str()), (&payload[..], key_id), "{args:?}");
        assert!(verified.created.is_some());
        // Not signed by the release key.
        assert_unknown_signer(release_keyring().verify(&message), key_id);
        // Dropping only the final newline of armor is harmless.
        for len in (0..message.len()).filter(|&len| !message[len..].iter().all(u8::is_ascii_whitespace)) {
            assert!(keys.verify(&message[..len]).is_err(), "{args:?}: prefix of {len} bytes verified");
        }
    }

    // Issuer only as a (hashed) fingerprint subpacket.
    let mut packets = flatten(&gpg.run(&["--sign"], payload));
    packets[2].body = strip_unhashed(&packets[2].body);
    assert_eq!(keys.verify(&encode(&packets)).unwrap().key_id, key_id);
    assert_unknown_signer(release_keyring().verify(&encode(&packets)), key_id);
}

#[test]
fn gpg_streamed_and_text_signatures_verify() {
    let gpg = Gpg::new();
    let fpr = gpg.generate("Test <t@example.com>");
    let keys = Keyring::parse(&gpg.run(&["--armor", "--export", &fpr], b"")).unwrap();

    // From a pipe gpg does not know the length and writes partial body lengths.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let message = gpg.run(&["--sign", "--compress-algo", "none"], &big);
    assert_eq!(&message[15..17], &[0xcb, 0xed], "expected a literal packet with a partial length");
    assert_eq!(keys.verify(&message).unwrap().payload, big);
    assert!(keys.verify(&gpg.run(&["--sign"], &big)).is_ok());

    // Canonical text: gpg stores CR LF; LF-only literal data must hash the same.
    let message = gpg.run(&["--sign", "--textmode", "--compress-algo", "none"], b"a\nb\r\nc\n");
    assert_eq!(keys.verify(&message).unwrap().payload, b"a\r\nb\r\nc\r\n");
    let mut packets = flatten(&message);
    let mut literal = packets[1].body[..packets[1].body.len() - 9].to_vec();
    literal.extend_from_slice(b"a\nb\nc\r\n");
    packets[1].body = literal;
    assert_eq!(keys.verify(&encode(&packets)).unwrap().payload, b"a\nb\nc\r\n");
}

#[test]
fn gpg_refused_forms() {
    let gpg = Gpg::new();
    let fpr = gpg.generate("Test <t@example.com>");
    let keys = Keyring::parse(&gpg.run(&["--armor", "--export", &fpr], b"")).unwrap();
    let payload = b"payload\n";

    let sha1 = gpg.run(&["--sign", "--digest-algo", "SHA1"], payload);
    assert!(matches!(keys.verify(&sha1), Err(PgpError::Unsupported(m)) if m.contains("SHA-1")));
    let clear = gpg.run(&["--clearsign"], payload);
    assert!(matches!(keys.verify(&clear), Err(PgpError::Unsupported(m)) if m.contains("cleartext")));
    let detached = gpg.run(&["--detach-sign"], payload);
    assert!(matches!(keys.verify(&detached), Err(PgpError::Malformed(_))));
    let unsigned = gpg.run(&["--store"], payload);
    assert!(matches!(keys.verify(&unsigned), Err(PgpError::NotSigned)));

    // A message signed by the subkey of a second key; the keyring must hold that subkey.
    let other = gpg.generate("Other <o@example.com>");
    gpg.run(&["--quick-add-key", &other, "rsa3072", "sign", "never"], b"");
    let sub = gpg.fingerprints("Other <o@example.com>")[1].clone();
    let message = gpg.run(&["--sign", "--local-user", &format!("{sub}!")], payload);
    assert_unknown_signer(keys.verify(&message), &sub[24..]);
    let other_keys = Keyring::parse(&gpg.run(&["--export", &other], b"")).unwrap();
    assert_eq!(other_keys.key_ids(), [&other[24..], &sub[24..]]);
    assert_eq!(other_keys.verify(&message).unwrap().key_id, &sub[24..]);
    // Tampering with the uncompressed literal data breaks the signature.
    let mut tampered = gpg.run(&["--sign", "--compress-algo", "none", "--local-user", &format!("{sub}!")], payload);
    let at = tampered.windows(payload.len()).position(|w| w == payload).unwrap();
    tampered[at] ^= 1;
    assert!(matches!(other_keys.verify(&tampered), Err(PgpError::BadSignature { .. })));
}

/// An RSA key made in-process, for signatures gpg no longer writes (v3, no subpackets, ...).
struct LocalKey {
    pair: aws_lc_rs::rsa::KeyPair,
    keyring: Keyring,
    key_id: [u8; 8],
}

fn mpi(bytes: &[u8]) -> Vec<u8> {
    let bits = bytes.len() * 8 - bytes[0].leading_zeros() as usize;
    [&u16::try_from(bits).unwrap().to_be_bytes()[..], bytes].concat()
}

fn subpacket(kind: u8, data: &[u8]) -> Vec<u8> {
    [&[u8::try_from(data.len() + 1).unwrap(), kind][..], data].concat()
}

fn literal(data: &[u8]) -> Vec<u8> {
    packet(11, &[&[b'b', 1, b'x', 0, 0, 0, 0][..], data].concat())
}

impl LocalKey {
    fn new() -> LocalKey {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = aws_lc_rs::signature::KeyPair::public_key(&pair);
        let (n, e) = (public.modulus(), public.exponent());
        let body = [
            &[4, 0x65, 0, 0, 0, 1][..],
            &mpi(n.big_endian_without_leading_zero()),
            &mpi(e.big_endian_without_leading_zero()),
        ]
        .concat();
        let keyring = Keyring::parse(&packet(6, &body)).unwrap();
        let key_id = keyring.keys[0].key_id;
        LocalKey { pair, keyring, key_id }
    }

    /// Signs `data || trailer` with SHA-256; returns the left 16 bits and the signature MPI.
    fn sign(&self, data: &[u8], trailer: &[u8]) -> Vec<u8> {
        let signed = [data, trailer].concat();
        let mut value = vec![0; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, &signed, &mut value).unwrap();
        let left16 = digest::digest(&digest::SHA256, &signed).as_ref()[..2].to_vec();
        let zeros = value.iter().take_while(|&&b| b == 0).count();
        [left16, mpi(&value[zeros..])].concat()
    }

    fn v4(&self, sig_type: u8, hashed: &[u8], unhashed: &[u8], data: &[u8]) -> Vec<u8> {
        let head = [&[4, sig_type, 1, 8][..], &u16::try_from(hashed.len()).unwrap().to_be_bytes(), hashed].concat();
        let trailer = [&head[..], &[4, 0xff], &u32::try_from(head.len()).unwrap().to_be_bytes()].concat();
        let unhashed = [&u16::try_from(unhashed.len()).unwrap().to_be_bytes()[..], unhashed].concat();
        packet(2, &[head, unhashed, self.sign(data, &trailer)].concat())
    }

    fn v3(&self, sig_type: u8, created: u32, data: &[u8]) -> Vec<u8> {
        let hashed = [&[sig_type][..], &created.to_be_bytes()].concat();
        let head = [&[3, 5][..], &hashed, &self.key_id, &[1, 8]].concat();
        packet(2, &[head, self.sign(data, &hashed)].concat())
    }
}

#[test]
fn locally_made_signatures() {
    let key = LocalKey::new();
    let id = hex::encode_upper(key.key_id);
    let data = b"line one\nline two\n";
    let check = |sig: Vec<u8>| key.keyring.verify(&[literal(data), sig].concat());

    let v3 = check(key.v3(0x00, 1_700_000_000, data)).unwrap();
    assert_eq!((v3.payload.as_slice(), v3.key_id.as_str(), v3.created), (&data[..], id.as_str(), Some(1_700_000_000)));
    let text = check(key.v3(0x01, 7, b"line one\r\nline two\r\n")).unwrap();
    assert_eq!(text.payload, data);
    // No subpackets at all: no creation time, no issuer (every key is tried).
    assert_eq!(check(key.v4(0x00, &[], &[], data)).unwrap().created, None);
    let issuer = subpacket(16, &key.key_id);
    let created = subpacket(2, &42u32.to_be_bytes());
    let ok = check(key.v4(0x00, &[created.clone(), issuer.clone()].concat(), &[], data)).unwrap();
    assert_eq!(ok.created, Some(42));
    // A creation time outside the hashed area is not trusted.
    assert_eq!(check(key.v4(0x00, &[], &[created.clone(), issuer.clone()].concat(), data)).unwrap().created, None);

    // Critical subpackets: known or ignorable ones pass, others void the signature.
    assert!(check(key.v4(0x00, &subpacket(0x80 | 2, &[0, 0, 0, 1]), &[], data)).is_ok());
    assert!(check(key.v4(0x00, &subpacket(0x80 | 4, &[1]), &[], data)).is_ok());
    assert!(check(key.v4(0x00, &subpacket(20, &[0; 8]), &[], data)).is_ok());
    let notation = check(key.v4(0x00, &subpacket(0x80 | 20, &[0; 8]), &[], data));
    assert!(matches!(notation, Err(PgpError::Unsupported(m)) if m.contains("critical")));

    // Expiry: zero means never; otherwise created + expiry must be in the future.
    let expiry = |secs: u32| [created.clone(), subpacket(3, &secs.to_be_bytes()), issuer.clone()].concat();
    assert!(check(key.v4(0x00, &expiry(0), &[], data)).is_ok());
    assert!(matches!(check(key.v4(0x00, &expiry(1), &[], data)), Err(PgpError::Expired { key_id }) if key_id == id));
    assert!(check(key.v4(0x00, &expiry(u32::MAX), &[], data)).is_ok());

    // Other signature types (here a key certification) are not message signatures.
    assert!(matches!(check(key.v4(0x10, &issuer, &[], data)), Err(PgpError::Unsupported(_))));
    // A signature over other data.
    let bad = check(key.v4(0x00, &issuer, &[], b"other"));
    assert!(matches!(bad, Err(PgpError::BadSignature { key_id }) if key_id == id));
}

#[test]
fn short_signature_values_are_padded() {
    // About one RSA signature in 256 starts with a zero byte, and its MPI is then shorter than
    // the modulus; search for one by varying the creation time.
    let key = LocalKey::new();
    let data = b"payload";
    let short = (0..20_000u32)
        .map(|t| key.v3(0x00, t, data))
        // packet header 6, fixed fields 17, left 16 bits 2, MPI length 2, value 256 bytes
        .find(|sig| sig.len() < 6 + 17 + 2 + 2 + 256)
        .expect("a short signature");
    assert!(key.keyring.verify(&[literal(data), short].concat()).is_ok());
}

#[test]
fn unusable_keys_are_skipped() {
    let weak = [&[4, 0, 0, 0, 0, 1][..], &mpi(&[0xc1; 128]), &mpi(&[1, 0, 1])].concat();
    let dsa = [&[4, 0, 0, 0, 0, 17][..], &mpi(&[0xc1; 128])].concat();
    let v3 = [&[3, 0, 0, 0, 0, 0, 0, 1][..], &mpi(&[0xc1; 256]), &mpi(&[1, 0, 1])].concat();
    let bad = [packet(6, &weak), packet(6, &dsa), packet(14, &v3)].concat();
    let err = Keyring::parse(&bad).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("1024-bit") && text.contains("algorithm 17") && text.contains("version 3"), "{text}");
    let release = read("redhat-public-keys/verifier-public-key-redhat-release");
    let release = dearmor(&release).unwrap().remove(0);
    assert_eq!(Keyring::parse(&[bad, release].concat()).unwrap().key_ids(), [RELEASE_KEY_ID]);
}

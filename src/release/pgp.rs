//! Minimal OpenPGP verifier (a subset of RFC 4880 / RFC 9580) for OpenShift release signatures.
//!
//! Release signatures ("atomic container signatures") are OpenPGP messages: usually a
//! compressed-data packet holding a one-pass-signature, the literal data (a JSON document naming
//! the release digest) and a signature packet. Only what is needed to check them is implemented:
//! v4 RSA keys and subkeys, v4 and v3 RSA signatures with SHA-2 over binary or canonical text.
//! Anything else is refused with an error rather than guessed at.
//!
//! Keys are trusted as given: self-signatures, revocations and key expiry are not evaluated, so
//! the keyring must only hold keys the administrator chose to trust.

use aws_lc_rs::{digest, signature};
use base64::Engine as _;
use flate2::{Decompress, FlushDecompress, Status};

/// Largest decompressed message accepted; real release signatures are under 1 KiB.
const MAX_DECOMPRESSED: usize = 16 << 20;

/// Critical hashed subpackets that are safe to ignore on a data signature (exportable, policy
/// URI, signer's user ID); any other critical subpacket we do not interpret voids the signature.
const IGNORABLE_CRITICAL: &[u8] = &[4, 26, 28];

/// Why a key or message was rejected.
#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    /// The input is not well-formed OpenPGP (or ASCII armor).
    #[error("malformed OpenPGP data: {0}")]
    Malformed(String),
    /// The input is well-formed but uses a feature this verifier refuses.
    #[error("unsupported OpenPGP data: {0}")]
    Unsupported(String),
    /// A keyring input held no key that can verify signatures.
    #[error("no usable OpenPGP public key found (need v4 RSA keys of 2048 to 8192 bits){0}")]
    NoUsableKey(String),
    /// The message carries no signature packet.
    #[error("OpenPGP message is not signed")]
    NotSigned,
    /// The signature names a key that is not in the trusted keyring.
    #[error("signed by key {key_id}, which is not in the trusted keyring")]
    UnknownSigner {
        /// Key ID named by the signature (16 uppercase hex digits).
        key_id: String,
    },
    /// The signature does not verify over the message.
    #[error("signature by key {key_id} does not verify")]
    BadSignature {
        /// Key ID named by the signature, or "(no issuer)".
        key_id: String,
    },
    /// The signature verified but carries an expiration time that has passed.
    #[error("signature by key {key_id} has expired")]
    Expired {
        /// Key ID of the key that made the signature.
        key_id: String,
    },
}

fn malformed(msg: impl Into<String>) -> PgpError {
    PgpError::Malformed(msg.into())
}

fn unsupported(msg: impl Into<String>) -> PgpError {
    PgpError::Unsupported(msg.into())
}

/// One usable RSA public key (primary key or subkey).
#[derive(Clone)]
struct Key {
    key_id: [u8; 8],
    fingerprint: [u8; 20],
    /// Modulus and exponent, big-endian without leading zeros.
    n: Vec<u8>,
    e: Vec<u8>,
}

/// Public keys trusted to sign releases.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed literal data, exactly as carried in the message.
    pub payload: Vec<u8>,
    /// Key ID (16 uppercase hex digits) of the key or subkey whose signature verified.
    pub key_id: String,
    /// Signature creation time in Unix seconds, from the hashed creation-time subpacket (or the v3
    /// signature field).
    pub created: Option<u32>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("key_ids", &self.key_ids()).finish()
    }
}

impl Keyring {
    /// Parses one or more keys, ASCII-armored ("-----BEGIN PGP PUBLIC KEY BLOCK-----", several
    /// blocks may be concatenated in one input, CRC24 checked when present) or binary. Keys that
    /// cannot verify signatures (other algorithms or versions, RSA outside 2048..=8192 bits) are
    /// skipped; errors if no usable key was found.
    pub fn parse(bytes: &[u8]) -> Result<Keyring, PgpError> {
        let mut keyring = Keyring { keys: Vec::new() };
        let mut skipped = Vec::new();
        for blob in dearmor(bytes)? {
            for packet in parse_packets(&blob)? {
                // Public key (6) and public subkey (14); user IDs, signatures and the rest are ignored.
                if matches!(packet.tag, 6 | 14) {
                    match parse_key(&packet.body) {
                        Ok(key) => keyring.add(key),
                        Err(why) => skipped.push(why),
                    }
                }
            }
        }
        if keyring.keys.is_empty() {
            let detail = if skipped.is_empty() { String::new() } else { format!(": skipped {}", skipped.join(", ")) };
            return Err(PgpError::NoUsableKey(detail));
        }
        Ok(keyring)
    }

    /// Adds the keys of another keyring (keys already present are not duplicated).
    pub fn extend(&mut self, other: Keyring) {
        for key in other.keys {
            self.add(key);
        }
    }

    /// Key IDs (16 uppercase hex digits) of every key and subkey, for messages.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex::encode_upper(k.key_id)).collect()
    }

    fn add(&mut self, key: Key) {
        if !self.keys.iter().any(|k| k.fingerprint == key.fingerprint) {
            self.keys.push(key);
        }
    }

    /// Verifies a signed message (binary, as served by mirror.openshift.com: optionally a
    /// compressed-data packet containing one-pass-signature + literal data + signature packets;
    /// armored "-----BEGIN PGP MESSAGE-----" is accepted too) and returns the literal data only if
    /// a signature by a key of this keyring verifies over it.
    pub fn verify(&self, message: &[u8]) -> Result<Verified, PgpError> {
        let mut blobs = dearmor(message)?;
        let blob = match (blobs.pop(), blobs.is_empty()) {
            (Some(blob), true) => blob,
            _ => return Err(malformed("expected exactly one armored message")),
        };
        let mut packets = parse_packets(&blob)?;
        packets.retain(|p| p.tag != 10); // marker packets carry nothing
        if let [only] = packets.as_slice()
            && only.tag == 8
        {
            packets = parse_packets(&decompress(&only.body)?)?;
            packets.retain(|p| p.tag != 10);
        }
        let mut literal = None;
        let mut signatures = Vec::new();
        for packet in packets {
            match packet.tag {
                11 if literal.is_some() => return Err(malformed("more than one literal data packet")),
                11 => literal = Some(packet.body),
                2 => signatures.push(packet.body),
                4 => {} // one-pass signature: only a hint for streaming verifiers
                8 => return Err(unsupported("nested or mixed compressed data packets")),
                tag => return Err(malformed(format!("unexpected packet (tag {tag}) in a signed message"))),
            }
        }
        let literal = literal.ok_or_else(|| malformed("no literal data packet in message"))?;
        let payload = literal_body(&literal)?;
        // Report the most telling failure when no signature verifies.
        let rank = |e: &PgpError| match e {
            PgpError::BadSignature { .. } | PgpError::Expired { .. } => 3,
            PgpError::Unsupported(_) => 2,
            PgpError::UnknownSigner { .. } => 1,
            _ => 0,
        };
        let mut failure = PgpError::NotSigned;
        for body in &signatures {
            match parse_signature(body).and_then(|sig| self.check(&sig, payload)) {
                Ok(verified) => return Ok(verified),
                Err(e) if matches!(failure, PgpError::NotSigned) || rank(&e) > rank(&failure) => failure = e,
                Err(_) => {}
            }
        }
        Err(failure)
    }

    fn check(&self, sig: &Signature, payload: &[u8]) -> Result<Verified, PgpError> {
        if !matches!(sig.pk_algo, 1 | 3) {
            return Err(unsupported(format!("public-key algorithm {} (only RSA is supported)", sig.pk_algo)));
        }
        let (params, hash) = hash_algorithm(sig.hash_algo)?;
        let mut signed = match sig.sig_type {
            0x00 => payload.to_vec(),
            0x01 => canonical_text(payload),
            t => return Err(unsupported(format!("signature type 0x{t:02x} over a message"))),
        };
        signed.extend_from_slice(&sig.trailer);

        let fp_id = sig.issuer_fp.map(|fp| key_id_of(&fp));
        let named = sig.issuer.or(fp_id).map_or_else(|| "(no issuer)".to_string(), hex::encode_upper);
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| match (sig.issuer, sig.issuer_fp) {
                (None, None) => true,
                (id, fp) => Some(k.key_id) == id || Some(k.fingerprint) == fp,
            })
            .collect();
        if candidates.is_empty() {
            return Err(PgpError::UnknownSigner { key_id: named });
        }
        // The quick check only rejects early; acceptance always rests on the RSA verification.
        if digest::digest(hash, &signed).as_ref().get(..2) != Some(&sig.left16[..]) {
            return Err(PgpError::BadSignature { key_id: named });
        }
        for key in candidates {
            if !rsa_verify(key, params, &signed, &sig.value) {
                continue;
            }
            let key_id = hex::encode_upper(key.key_id);
            if let (Some(created), Some(expires @ 1..)) = (sig.created, sig.expires) {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                if u64::from(created) + u64::from(expires) <= now.as_secs() {
                    return Err(PgpError::Expired { key_id });
                }
            }
            return Ok(Verified { payload: payload.to_vec(), key_id, created: sig.created });
        }
        Err(PgpError::BadSignature { key_id: named })
    }
}

fn rsa_verify(key: &Key, params: &'static signature::RsaParameters, signed: &[u8], value: &[u8]) -> bool {
    // An MPI drops leading zero bytes, but RSA wants the signature as long as the modulus.
    let Some(pad) = key.n.len().checked_sub(value.len()) else { return false };
    let mut padded = vec![0u8; pad];
    padded.extend_from_slice(value);
    signature::RsaPublicKeyComponents { n: &key.n, e: &key.e }.verify(params, signed, &padded).is_ok()
}

fn hash_algorithm(id: u8) -> Result<(&'static signature::RsaParameters, &'static digest::Algorithm), PgpError> {
    match id {
        8 => Ok((&signature::RSA_PKCS1_2048_8192_SHA256, &digest::SHA256)),
        9 => Ok((&signature::RSA_PKCS1_2048_8192_SHA384, &digest::SHA384)),
        10 => Ok((&signature::RSA_PKCS1_2048_8192_SHA512, &digest::SHA512)),
        1 => Err(unsupported("MD5 signatures are refused")),
        2 => Err(unsupported("SHA-1 signatures are refused")),
        3 => Err(unsupported("RIPEMD-160 signatures are refused")),
        other => Err(unsupported(format!("signature hash algorithm {other}"))),
    }
}

/// Text signatures hash the data with every line ending as CR LF.
fn canonical_text(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

fn key_id_of(fingerprint: &[u8; 20]) -> [u8; 8] {
    fingerprint[12..].try_into().unwrap_or_default()
}

/// Bounds-checked cursor over packet data: every read fails cleanly instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PgpError> {
        if n > self.0.len() {
            return Err(malformed(format!("truncated {what}")));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, PgpError> {
        let (&b, rest) = self.0.split_first().ok_or_else(|| malformed(format!("truncated {what}")))?;
        self.0 = rest;
        Ok(b)
    }

    /// Big-endian integer of `n` (at most 4) bytes.
    fn be(&mut self, n: usize, what: &str) -> Result<usize, PgpError> {
        Ok(self.take(n, what)?.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
    }

    /// A multiprecision integer with its leading zero bytes removed.
    fn mpi(&mut self, what: &str) -> Result<&'a [u8], PgpError> {
        let bits = self.be(2, what)?;
        let bytes = self.take(bits.div_ceil(8), what)?;
        let zeros = bytes.iter().take_while(|&&b| b == 0).count();
        Ok(bytes.get(zeros..).unwrap_or_default())
    }
}

struct Packet {
    tag: u8,
    body: Vec<u8>,
}

/// Splits binary OpenPGP data into packets (old and new header formats, all length encodings).
fn parse_packets(data: &[u8]) -> Result<Vec<Packet>, PgpError> {
    let mut r = Reader(data);
    let mut packets = Vec::new();
    while !r.0.is_empty() {
        let ctb = r.u8("packet header")?;
        if ctb & 0x80 == 0 {
            return Err(malformed(format!("invalid packet header byte 0x{ctb:02x}")));
        }
        let (tag, body) = if ctb & 0x40 != 0 {
            let tag = ctb & 0x3f;
            let mut body = Vec::new();
            loop {
                let first = r.u8("packet length")?;
                let (len, last) = match first {
                    0..=191 => (usize::from(first), true),
                    192..=223 => (((usize::from(first) - 192) << 8) + r.be(1, "packet length")? + 192, true),
                    224..=254 => (1usize << (first & 0x1f), false),
                    255 => (r.be(4, "packet length")?, true),
                };
                // Partial lengths are only allowed on data-carrying packets.
                if !last && !matches!(tag, 8 | 9 | 11 | 18 | 20) {
                    return Err(malformed(format!("partial body length on packet tag {tag}")));
                }
                body.extend_from_slice(r.take(len, "packet body")?);
                if last {
                    break;
                }
            }
            (tag, body)
        } else {
            let tag = (ctb >> 2) & 0x0f;
            let len = match ctb & 3 {
                0 => r.be(1, "packet length")?,
                1 => r.be(2, "packet length")?,
                2 => r.be(4, "packet length")?,
                // Indeterminate length (gpg uses it for compressed data): the rest of the input.
                _ => r.0.len(),
            };
            (tag, r.take(len, "packet body")?.to_vec())
        };
        if tag == 0 {
            return Err(malformed("packet with reserved tag 0"));
        }
        packets.push(Packet { tag, body });
    }
    Ok(packets)
}

/// Parses a v4 public key or subkey packet; the error says why the key cannot be used.
fn parse_key(body: &[u8]) -> Result<Key, String> {
    let mut r = Reader(body);
    let head = r.take(6, "key packet").map_err(|e| e.to_string())?;
    let &[version, _, _, _, _, algo] = head else { return Err("truncated key packet".into()) };
    if version != 4 || !matches!(algo, 1 | 3) {
        return Err(format!("a version {version} key with public-key algorithm {algo}"));
    }
    let n = r.mpi("RSA modulus").map_err(|e| e.to_string())?.to_vec();
    let e = r.mpi("RSA exponent").map_err(|e| e.to_string())?.to_vec();
    let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) || e.is_empty() {
        return Err(format!("a {bits}-bit RSA key"));
    }
    let len = u16::try_from(body.len()).map_err(|_| "an oversized key packet".to_string())?;
    let hashed = [&[0x99][..], &len.to_be_bytes(), body].concat();
    let fingerprint: [u8; 20] = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &hashed)
        .as_ref()
        .try_into()
        .map_err(|_| "a key whose fingerprint cannot be computed".to_string())?;
    Ok(Key { key_id: key_id_of(&fingerprint), fingerprint, n, e })
}

#[derive(Default)]
struct Signature {
    sig_type: u8,
    pk_algo: u8,
    hash_algo: u8,
    /// What is hashed after the signed data.
    trailer: Vec<u8>,
    issuer: Option<[u8; 8]>,
    issuer_fp: Option<[u8; 20]>,
    created: Option<u32>,
    expires: Option<u32>,
    left16: [u8; 2],
    /// The RSA signature value without leading zeros.
    value: Vec<u8>,
}

fn parse_signature(body: &[u8]) -> Result<Signature, PgpError> {
    let mut r = Reader(body);
    let mut sig = Signature::default();
    match r.u8("signature packet")? {
        3 => {
            if r.u8("signature packet")? != 5 {
                return Err(malformed("v3 signature with hashed length other than 5"));
            }
            let hashed = r.take(5, "signature packet")?;
            let &[sig_type, a, b, c, d] = hashed else { return Err(malformed("truncated signature packet")) };
            sig.sig_type = sig_type;
            sig.created = Some(u32::from_be_bytes([a, b, c, d]));
            sig.trailer = hashed.to_vec();
            sig.issuer = r.take(8, "signature issuer")?.try_into().ok();
            sig.pk_algo = r.u8("signature packet")?;
            sig.hash_algo = r.u8("signature packet")?;
        }
        4 => {
            sig.sig_type = r.u8("signature packet")?;
            sig.pk_algo = r.u8("signature packet")?;
            sig.hash_algo = r.u8("signature packet")?;
            let hashed_len = r.be(2, "signature packet")?;
            subpackets(r.take(hashed_len, "hashed subpackets")?, true, &mut sig)?;
            let hashed_part = body.get(..6 + hashed_len).ok_or_else(|| malformed("truncated signature"))?;
            let hashed_part_len = u32::try_from(hashed_part.len()).map_err(|_| malformed("oversized signature"))?;
            sig.trailer = [hashed_part, &[4, 0xff], &hashed_part_len.to_be_bytes()].concat();
            let unhashed_len = r.be(2, "signature packet")?;
            subpackets(r.take(unhashed_len, "unhashed subpackets")?, false, &mut sig)?;
        }
        v => return Err(unsupported(format!("version {v} signature"))),
    }
    sig.left16 = r.take(2, "signature packet")?.try_into().map_err(|_| malformed("truncated signature packet"))?;
    if !matches!(sig.pk_algo, 1 | 3) {
        // Not RSA: the value layout is unknown, and check() reports the algorithm.
        return Ok(sig);
    }
    sig.value = r.mpi("RSA signature value")?.to_vec();
    if !r.0.is_empty() {
        return Err(malformed("trailing data in RSA signature packet"));
    }
    Ok(sig)
}

fn subpackets(data: &[u8], hashed: bool, sig: &mut Signature) -> Result<(), PgpError> {
    let mut r = Reader(data);
    while !r.0.is_empty() {
        let first = r.u8("subpacket length")?;
        let len = match first {
            0..=191 => usize::from(first),
            192..=254 => ((usize::from(first) - 192) << 8) + r.be(1, "subpacket length")? + 192,
            255 => r.be(4, "subpacket length")?,
        };
        let (&kind, data) = r.take(len, "subpacket")?.split_first().ok_or_else(|| malformed("empty subpacket"))?;
        let time = || <[u8; 4]>::try_from(data).map(u32::from_be_bytes).map_err(|_| malformed("bad time subpacket"));
        match (kind & 0x7f, hashed) {
            // Times only count when covered by the signature.
            (2, true) => sig.created = Some(time()?),
            (3, true) => sig.expires = Some(time()?),
            (16, _) => sig.issuer = Some(data.try_into().map_err(|_| malformed("bad issuer subpacket"))?),
            (33, _) => {
                // Only v4 fingerprints can match keys we hold; others are left unmatched.
                if let Some((4, fp)) = data.split_first() {
                    sig.issuer_fp = Some(fp.try_into().map_err(|_| malformed("bad issuer fingerprint subpacket"))?);
                }
            }
            (k, true) if kind & 0x80 != 0 && !IGNORABLE_CRITICAL.contains(&k) => {
                return Err(unsupported(format!("critical signature subpacket {k}")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Returns the data of a literal data packet (after format, file name and date).
fn literal_body(body: &[u8]) -> Result<&[u8], PgpError> {
    let mut r = Reader(body);
    r.u8("literal data header")?;
    let name_len = r.u8("literal data header")?;
    r.take(usize::from(name_len) + 4, "literal data header")?;
    Ok(r.0)
}

/// Decompresses the body of a compressed data packet.
fn decompress(body: &[u8]) -> Result<Vec<u8>, PgpError> {
    let (&algo, data) = body.split_first().ok_or_else(|| malformed("empty compressed data packet"))?;
    match algo {
        0 => Ok(data.to_vec()),
        1 | 2 => inflate(data, algo == 2),
        3 => Err(unsupported("BZip2 compressed data")),
        other => Err(unsupported(format!("compression algorithm {other}"))),
    }
}

/// Inflates raw DEFLATE or zlib data; truncated streams, trailing bytes and output over
/// MAX_DECOMPRESSED are refused.
fn inflate(data: &[u8], zlib: bool) -> Result<Vec<u8>, PgpError> {
    let mut z = Decompress::new(zlib);
    let mut out = Vec::new();
    loop {
        if out.len() == out.capacity() {
            // Never more room than one byte past the limit, so a bomb is caught there.
            out.reserve_exact(out.len().max(4096).min((MAX_DECOMPRESSED + 1).saturating_sub(out.len())));
        }
        let before = (z.total_in(), z.total_out());
        let input = usize::try_from(before.0).ok().and_then(|n| data.get(n..)).unwrap_or_default();
        let status = z
            .decompress_vec(input, &mut out, FlushDecompress::None)
            .map_err(|e| malformed(format!("corrupt compressed data: {e}")))?;
        match status {
            _ if out.len() > MAX_DECOMPRESSED => {
                return Err(unsupported(format!("compressed data expands beyond {} MiB", MAX_DECOMPRESSED >> 20)));
            }
            Status::StreamEnd if usize::try_from(z.total_in()).ok() == Some(data.len()) => return Ok(out),
            Status::StreamEnd => return Err(malformed("data after the end of the compressed stream")),
            _ if (z.total_in(), z.total_out()) == before => return Err(malformed("truncated compressed data")),
            _ => {}
        }
    }
}

/// Returns the binary OpenPGP data of the input: itself when binary, else each armored block.
fn dearmor(input: &[u8]) -> Result<Vec<Vec<u8>>, PgpError> {
    match input.first() {
        None => return Err(malformed("empty input")),
        Some(b) if b & 0x80 != 0 => return Ok(vec![input.to_vec()]),
        Some(_) => {}
    }
    let text = std::str::from_utf8(input).map_err(|_| malformed("neither binary OpenPGP nor ASCII armor"))?;
    // Each block runs to the next BEGIN line, so files concatenated without a final newline
    // ("-----END ...----------BEGIN ...") still split correctly.
    let starts: Vec<usize> = text.match_indices("-----BEGIN PGP ").map(|(i, _)| i).collect();
    let mut blocks = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let block = text.get(start..starts.get(k + 1).copied().unwrap_or(text.len())).unwrap_or_default();
        let mut lines = block.lines().map(str::trim);
        let label = lines
            .next()
            .and_then(|l| l.strip_prefix("-----BEGIN PGP ")?.strip_suffix("-----"))
            .ok_or_else(|| malformed("bad armor header line"))?;
        if label == "SIGNED MESSAGE" {
            return Err(unsupported("cleartext-signed messages (expected a binary or armored signed message)"));
        }
        let end = format!("-----END PGP {label}-----");
        let (mut b64, mut crc, mut in_headers, mut closed) = (String::new(), None, true, false);
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            // Armor headers ("Version: ...") end at a blank line; some writers omit both.
            if in_headers && (line.is_empty() || line.contains(':')) {
                in_headers = !line.is_empty();
                continue;
            }
            in_headers = false;
            if crc.is_some() && !line.is_empty() {
                return Err(malformed("data after the armor checksum"));
            }
            match line.strip_prefix('=') {
                Some(sum) if line.len() == 5 => crc = Some(sum),
                _ => b64.push_str(line),
            }
        }
        if !closed {
            return Err(malformed(format!("armor block without \"{end}\"")));
        }
        let engine = base64::engine::general_purpose::STANDARD;
        let data = engine.decode(&b64).map_err(|e| malformed(format!("armor base64: {e}")))?;
        if let Some(sum) = crc {
            let want = engine.decode(sum).map_err(|_| malformed("bad armor checksum"))?;
            if want != crc24(&data).to_be_bytes()[1..] {
                return Err(malformed("armor checksum mismatch"));
            }
        }
        blocks.push(data);
    }
    if blocks.is_empty() {
        return Err(malformed("no \"-----BEGIN PGP\" armor block found"));
    }
    Ok(blocks)
}

fn crc24(data: &[u8]) -> u32 {
    let mut crc = 0x00B7_04CE_u32;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4CFB;
            }
        }
    }
    crc & 0x00FF_FFFF
}

#[cfg(test)]
#[path = "pgp_tests.rs"]
mod tests;

//! `btcts verify`: the offline verifier on the command line, for proof
//! documents (JSON) and OpenTimestamps files (`.ots`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aggregator::ots::{Attestation, DetachedTimestamp};
use aggregator::proof::{Proof, ProofError};
use aggregator::verify::{format_unix_utc, summary, verify, Expect};
use aggregator::{AnchorNetwork, Tag};
use bitcoin::block::Header;
use bitcoin::hashes::{sha256, Hash};
use btc_submitter::BitcoinNode;
use serde_json::{json, Value};

/// Arguments of `btcts verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The proof document (JSON) or OpenTimestamps file (`.ots`), or `-` for
    /// standard input.
    proof: PathBuf,
    /// Print the result as JSON instead of a human summary.
    #[arg(long)]
    json: bool,
    /// Require the anchor to be on this network
    /// (bitcoin, testnet, testnet4, signet, regtest, litecoin, litecoin-regtest).
    #[arg(long)]
    network: Option<AnchorNetwork>,
    /// Require this deployment tag in the OP_RETURN payload (8 hex characters).
    #[arg(long)]
    tag: Option<Tag>,
    /// For `.ots`: take the attested block header from this proof document
    /// (verified in full first).
    #[arg(long, value_name = "PROOF_JSON", conflicts_with_all = ["headers", "node"])]
    with_proof: Option<PathBuf>,
    /// For `.ots`: take the attested block header from this file of
    /// `<height> <header hex>` lines (proof of work checked; needs --network).
    #[arg(long, value_name = "FILE", conflicts_with = "node")]
    headers: Option<PathBuf>,
    /// For `.ots`: ask this node for the header at the attested height,
    /// `http://user:password@host:port`.
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// For `.ots`: the timestamped file; its SHA-256 must be the file digest.
    #[arg(long, value_name = "FILE", conflicts_with = "digest")]
    file: Option<PathBuf>,
    /// For `.ots`: the timestamped digest (hex) instead of the file.
    #[arg(long, value_name = "HEX")]
    digest: Option<String>,
}

/// Exit status for a proof that does not verify.
const INVALID: u8 = 1;
/// Exit status when the proof could not be read, or an `.ots` file has no
/// header source to be checked against.
const UNREADABLE: u8 = 2;

pub fn run(args: &VerifyArgs, out: &mut impl Write, err: &mut impl Write) -> ExitCode {
    let bytes = if args.proof.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map(|_| buf)
    } else {
        std::fs::read(&args.proof)
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(
                err,
                "btcts verify: cannot read {}: {e}",
                args.proof.display()
            );
            return ExitCode::from(UNREADABLE);
        }
    };
    let expect = Expect {
        network: args.network,
        tag: args.tag,
    };
    let result = if DetachedTimestamp::looks_like(&bytes) {
        verify_ots(args, &bytes, &expect)
    } else {
        std::str::from_utf8(&bytes)
            .map_err(|_| Failure::Document("neither a JSON proof nor an .ots file".into()))
            .and_then(|text| {
                Proof::from_json(text).map_err(|e: ProofError| Failure::Document(e.to_string()))
            })
            .and_then(|p| verify(&p, &expect).map_err(Failure::Verify))
            .map(|v| {
                let text = format!("{}proof verified", summary(&v));
                (json!(v), text)
            })
    };
    let written = match (&result, args.json) {
        (Ok((v, _)), true) => writeln!(out, "{}", json!({ "valid": true, "result": v })),
        (Ok((_, text)), false) => writeln!(out, "{text}"),
        (Err(f), true) => writeln!(out, "{}", json!({ "valid": false, "error": f.to_json() })),
        (Err(f), false) => writeln!(err, "btcts verify: NOT VERIFIED: {}", f.message()),
    };
    if written.is_err() {
        return ExitCode::from(UNREADABLE);
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(Failure::NoHeaderSource(_)) => ExitCode::from(UNREADABLE),
        Err(_) => ExitCode::from(INVALID),
    }
}

/// Where the header at an attested height comes from.
enum Headers {
    Proof(Box<(aggregator::Verified, Proof)>),
    File(AnchorNetwork, Vec<(u64, Header)>),
    Node(btc_submitter::CoreRpcNode),
}

impl Headers {
    fn from_args(args: &VerifyArgs, expect: &Expect) -> Result<Headers, Failure> {
        if let Some(path) = &args.with_proof {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Document(format!("{}: {e}", path.display())))?;
            let proof = Proof::from_json(&text).map_err(|e| Failure::Document(e.to_string()))?;
            let v = verify(&proof, expect).map_err(Failure::Verify)?;
            return Ok(Headers::Proof(Box::new((v, proof))));
        }
        if let Some(path) = &args.headers {
            let network = args.network.ok_or_else(|| {
                Failure::NoHeaderSource("--headers needs --network to check proof of work".into())
            })?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Document(format!("{}: {e}", path.display())))?;
            return parse_headers(&text).map(|h| Headers::File(network, h));
        }
        if let Some(url) = &args.node {
            return node_from_url(url).map(Headers::Node);
        }
        Err(Failure::NoHeaderSource(
            "an .ots file is checked against a block header: give --with-proof, --headers or --node".into(),
        ))
    }

    /// The header at `height` on the expected chain, with its proof of work checked.
    fn at(&self, height: u64) -> Result<Header, String> {
        match self {
            Headers::Proof(b) => {
                let proof = &b.1;
                let a = proof
                    .anchor
                    .as_ref()
                    .ok_or("the proof document is not anchored")?;
                if u64::from(a.block.height) != height {
                    return Err(format!(
                        "the proof document's block is at height {}, not {height}",
                        a.block.height
                    ));
                }
                bitcoin::consensus::deserialize(&a.block.header.0).map_err(|e| e.to_string())
            }
            Headers::File(network, headers) => {
                let (_, h) = headers
                    .iter()
                    .find(|(at, _)| *at == height)
                    .ok_or_else(|| format!("no header at height {height} in the file"))?;
                network
                    .check_pow(h)
                    .map_err(|e| format!("header at height {height}: {e}"))?;
                Ok(*h)
            }
            Headers::Node(node) => {
                let height = u32::try_from(height).map_err(|_| "height out of range")?;
                let hash = node
                    .block_hash_at(height)
                    .map_err(|e| format!("node: {e}"))?
                    .ok_or_else(|| format!("the node has no block at height {height}"))?;
                node.header(&hash).map_err(|e| format!("node: {e}"))
            }
        }
    }
}

fn parse_headers(text: &str) -> Result<Vec<(u64, Header)>, Failure> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let bad = |why: &str| Failure::Document(format!("headers file: {why}: {line:?}"));
            let (height, hex) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected `<height> <header hex>`"))?;
            let height = height.parse().map_err(|_| bad("bad height"))?;
            let header = bitcoin::consensus::encode::deserialize_hex(hex.trim())
                .map_err(|_| bad("not an 80-byte header in hex"))?;
            Ok((height, header))
        })
        .collect()
}

fn node_from_url(url: &str) -> Result<btc_submitter::CoreRpcNode, Failure> {
    let bad = |why: String| Failure::NoHeaderSource(format!("--node: {why}"));
    let mut parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let user = parsed.username().to_owned();
    let password = parsed.password().unwrap_or_default().to_owned();
    if user.is_empty() {
        return Err(bad("expected http://user:password@host:port".into()));
    }
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    btc_submitter::CoreRpcNode::new(&btc_submitter::RpcConfig {
        url: parsed.to_string(),
        auth: btc_submitter::RpcAuth::UserPass(user, password),
    })
    .map_err(|e| bad(e.to_string()))
}

/// Verifies an `.ots` file: the digest (if a file or digest is given), the
/// operations, and one block attestation against a header source.
fn verify_ots(
    args: &VerifyArgs,
    bytes: &[u8],
    expect: &Expect,
) -> Result<(Value, String), Failure> {
    let file =
        DetachedTimestamp::from_bytes(bytes).map_err(|e| Failure::Document(e.to_string()))?;
    let digest = bitcoin::hex::DisplayHex::to_lower_hex_string(&file.digest[..]);
    if let Some(expected) = expected_digest(args)? {
        if expected != file.digest {
            return Err(Failure::Ots(
                "digest",
                "the file's SHA-256 is not the timestamp's digest".into(),
            ));
        }
    }
    let attestations = file
        .timestamp
        .replay(&file.digest)
        .map_err(|e| Failure::Ots("operations", e.to_string()))?;
    let blocks: Vec<(Vec<u8>, u64)> = attestations
        .iter()
        .filter_map(|(msg, a)| match a {
            Attestation::Bitcoin { height } | Attestation::Litecoin { height } => {
                Some((msg.clone(), *height))
            }
            _ => None,
        })
        .collect();
    if blocks.is_empty() {
        let pending: Vec<&str> = attestations
            .iter()
            .filter_map(|(_, a)| match a {
                Attestation::Pending { uri } => Some(uri.as_str()),
                _ => None,
            })
            .collect();
        return Err(Failure::Ots(
            "attestation",
            format!(
                "no block attestation yet (pending at {}); upgrade it first",
                if pending.is_empty() {
                    "no calendar".into()
                } else {
                    pending.join(", ")
                }
            ),
        ));
    }
    let source = Headers::from_args(args, expect)?;
    let mut reasons = Vec::new();
    for (msg, height) in &blocks {
        match source.at(*height) {
            Ok(header) if header.merkle_root.as_byte_array().as_slice() == msg.as_slice() => {
                let (confirmations, network) = match &source {
                    Headers::Proof(b) => (
                        b.0.anchor.as_ref().map(|a| a.confirmations),
                        b.0.anchor.as_ref().map(|a| a.network.to_string()),
                    ),
                    Headers::File(n, _) => (None, Some(n.to_string())),
                    Headers::Node(_) => (None, None),
                };
                let result = json!({
                    "format": "ots",
                    "digest": digest,
                    "block_height": height,
                    "block_hash": header.block_hash(),
                    "block_time": header.time,
                    "network": network,
                    "confirmations": confirmations,
                });
                let text = format!(
                    "timestamped: digest {digest} (OpenTimestamps file)\nblock:       {} at height {height}, {}\n{}proof verified",
                    header.block_hash(),
                    format_unix_utc(header.time),
                    confirmations.map_or(String::new(), |c| format!("depth:       {c} confirmation{} shown by the proof document\n", if c == 1 { "" } else { "s" })),
                );
                return Ok((result, text));
            }
            Ok(_) => reasons.push(format!(
                "block {height}: its Merkle root is not the timestamp's result"
            )),
            Err(e) => reasons.push(e),
        }
    }
    Err(Failure::Ots("block", reasons.join("; ")))
}

fn expected_digest(args: &VerifyArgs) -> Result<Option<[u8; 32]>, Failure> {
    if let Some(path) = &args.file {
        return hash_file(path).map(Some);
    }
    match &args.digest {
        Some(hex) => <[u8; 32] as bitcoin::hex::FromHex>::from_hex(hex)
            .map(Some)
            .map_err(|_| Failure::Document("--digest must be 64 hex characters".into())),
        None => Ok(None),
    }
}

fn hash_file(path: &Path) -> Result<[u8; 32], Failure> {
    let data =
        std::fs::read(path).map_err(|e| Failure::Document(format!("{}: {e}", path.display())))?;
    Ok(sha256::Hash::hash(&data).to_byte_array())
}

enum Failure {
    Document(String),
    Verify(aggregator::VerifyError),
    Ots(&'static str, String),
    NoHeaderSource(String),
}

impl Failure {
    fn message(&self) -> String {
        match self {
            Failure::Document(e) => format!("document: {e}"),
            Failure::Verify(e) => e.to_string(),
            Failure::Ots(step, e) => format!("{step}: {e}"),
            Failure::NoHeaderSource(e) => e.clone(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Failure::Document(e) => json!({ "step": "document", "detail": e }),
            Failure::Verify(e) => json!({ "step": e.step, "detail": e.detail }),
            Failure::Ots(step, e) => json!({ "step": step, "detail": e }),
            Failure::NoHeaderSource(e) => json!({ "step": "header_source", "detail": e }),
        }
    }
}

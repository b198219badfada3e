//! `btcts verify`: the offline verifier on the command line, for proof
//! documents (JSON) and OpenTimestamps files (`.ots`).
//!
//! No silent network choice: without `--network` only mainnet proofs
//! (`bitcoin`, `litecoin`) verify; a test network's proof verifies only when
//! asked for by name, and the output says its proof of work proves nothing.
//! Every result carries how far to trust it (`trust`): `checkpointed`,
//! `node-checked` (`--node`), `work-only` or `test-network`.

mod node;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aggregator::headers::check_work;
use aggregator::ots::{Attestation, DetachedTimestamp};
use aggregator::proof::{Proof, ProofError};
use aggregator::trust::{NetworkAnchors, Trust, TrustAnchors, WorkProven};
use aggregator::verify::{format_unix_utc, summary, verify_with, Expect, Verified};
use aggregator::{AnchorNetwork, Tag};
use bitcoin::block::Header;
use bitcoin::hashes::{sha256, Hash};
use btc_submitter::BitcoinNode;
use serde_json::{json, Value};

use node::Node;

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
    /// Without it only mainnet proofs (bitcoin, litecoin) verify.
    #[arg(long)]
    network: Option<AnchorNetwork>,
    /// Replace the compiled-in trust anchors (checkpoints, difficulty floor)
    /// of the networks this TOML file names (docs/proof-format.md §7).
    #[arg(long, value_name = "FILE")]
    trust_anchors: Option<PathBuf>,
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
    /// Check the anchor block against this node's best chain
    /// (`http://host:port`; JSON proofs and `.ots` files). Credentials from
    /// --node-cookie or --node-conf.
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// The node's `.cookie` file.
    #[arg(long, value_name = "FILE", requires = "node")]
    node_cookie: Option<PathBuf>,
    /// A bitcoin.conf-style file with `rpcuser` and `rpcpassword` (or
    /// `rpccookiefile`).
    #[arg(
        long,
        value_name = "FILE",
        requires = "node",
        conflicts_with = "node_cookie"
    )]
    node_conf: Option<PathBuf>,
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

/// The words printed with every test-network result.
fn test_network_warning(network: AnchorNetwork) -> String {
    format!(
        "WARNING: {network} is a test network: anyone can make its proof of work, so this proof shows only that the document is consistent, not that anything happened on a real chain"
    )
}

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
    let result = load_anchors(args).and_then(|anchors| {
        let ctx = Context {
            args,
            anchors,
            expect: Expect {
                network: args.network,
                tag: args.tag,
            },
        };
        if DetachedTimestamp::looks_like(&bytes) {
            verify_ots(&ctx, &bytes, err)
        } else {
            verify_json(&ctx, &bytes, err)
        }
    });
    let written = match (&result, args.json) {
        (Ok(ok), true) => writeln!(
            out,
            "{}",
            json!({ "valid": true, "trust": ok.trust.name(), "warning": ok.warning, "result": ok.json })
        ),
        (Ok(ok), false) => match &ok.warning {
            Some(w) => writeln!(out, "{}{w}\nproof verified (test network)", ok.text),
            None => writeln!(out, "{}proof verified", ok.text),
        },
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

/// What every verification needs.
struct Context<'a> {
    args: &'a VerifyArgs,
    anchors: TrustAnchors,
    expect: Expect,
}

/// A verified proof, for both outputs.
struct Outcome {
    json: Value,
    text: String,
    trust: Trust,
    warning: Option<String>,
}

fn load_anchors(args: &VerifyArgs) -> Result<TrustAnchors, Failure> {
    let mut anchors = TrustAnchors::builtin();
    if let Some(path) = &args.trust_anchors {
        let bad = |why: String| {
            Failure::NoHeaderSource(format!("--trust-anchors {}: {why}", path.display()))
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let file = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        anchors
            .override_with(file)
            .map_err(|e| bad(e.to_string()))?;
    }
    Ok(anchors)
}

/// The network rule: a test network only when asked for by name.
fn check_network(
    network: AnchorNetwork,
    expected: Option<AnchorNetwork>,
) -> Result<Option<String>, Failure> {
    if !network.is_test_network() {
        return Ok(None);
    }
    if expected == Some(network) {
        return Ok(Some(test_network_warning(network)));
    }
    Err(Failure::Step(
        "network",
        format!(
            "anchored on {network}, a test network whose proof of work anyone can make; only mainnet proofs verify by default (give --network {network} to check it anyway)"
        ),
    ))
}

fn verify_json(ctx: &Context<'_>, bytes: &[u8], err: &mut impl Write) -> Result<Outcome, Failure> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Failure::Document("neither a JSON proof nor an .ots file".into()))?;
    let proof = Proof::from_json(text).map_err(|e: ProofError| Failure::Document(e.to_string()))?;
    let mut v = verify_with(&proof, &ctx.expect, &ctx.anchors).map_err(Failure::Verify)?;
    let Some(anchor) = v.anchor.as_mut() else {
        // Verified up to the batch root: nothing on any chain to trust yet.
        let text = summary(&v);
        return Ok(Outcome {
            json: json!(v),
            text,
            trust: Trust::WorkOnly,
            warning: None,
        });
    };
    let warning = check_network(anchor.network, ctx.expect.network)?;
    let mut node_line = String::new();
    if let Some(url) = &ctx.args.node {
        let node = Node::connect(ctx.args, url, err)?;
        let index = proof.anchor.as_ref().map_or(0, |a| a.tx_index);
        let seen = node.check(
            anchor.network,
            anchor.block_height,
            &anchor.block_hash,
            Some((anchor.txid, index)),
        )?;
        anchor.trust = Trust::NodeChecked;
        anchor.confirmations = seen.confirmations;
        node_line = format!(
            "node:        the anchor block is in the node's best chain and holds the transaction (tip at height {}): {} confirmation{}\n",
            seen.tip_height,
            seen.confirmations,
            plural(seen.confirmations)
        );
    }
    let trust = anchor.trust;
    let text = format!(
        "{}{node_line}{}",
        summary(&v),
        trust_lines(&v, ctx.anchors.get(anchor_network(&v)))
    );
    Ok(Outcome {
        json: json!(v),
        text,
        trust,
        warning,
    })
}

fn anchor_network(v: &Verified) -> AnchorNetwork {
    v.anchor
        .as_ref()
        .map_or(AnchorNetwork::Bitcoin, |a| a.network)
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `trust:` and `work:` lines of the human summary.
fn trust_lines(v: &Verified, net: &NetworkAnchors) -> String {
    let Some(a) = &v.anchor else {
        return String::new();
    };
    let trust = match a.trust {
        Trust::Checkpointed => format!(
            "checkpointed (the proof reaches checkpoint {} at height {})",
            a.checkpoint.map_or(String::new(), |c| c.hash.to_string()),
            a.checkpoint.map_or(0, |c| c.height)
        ),
        Trust::NodeChecked => "node-checked (your node's best chain holds the anchor block and transaction)".into(),
        Trust::WorkOnly => "work-only (proof of work at or above the difficulty floor; no checkpoint or node confirms the chain)".into(),
        Trust::TestNetwork => "test-network (its proof of work proves nothing)".into(),
    };
    format!(
        "trust:       {trust}\nwork:        {}\n",
        work_words(&a.work, a.network, net)
    )
}

fn work_words(w: &WorkProven, network: AnchorNetwork, net: &NetworkAnchors) -> String {
    let mut out = format!("about 2^{:.1} hashes", w.log2);
    if let (Some(blocks), Some(reward), Some(bits)) =
        (w.blocks_at_floor, w.reward_equivalent, net.floor_bits)
    {
        out.push_str(&format!(
            ", {blocks:.2} blocks at the floor difficulty (bits {:#010x}), {reward:.3} {} of block rewards",
            bits.to_consensus(),
            network.coin()
        ));
    }
    out
}

/// Where the header at an attested height comes from.
enum Headers {
    Proof(Box<(Verified, Proof)>),
    File(AnchorNetwork, Vec<(u64, Header)>),
    Node(Box<Node>),
}

impl Headers {
    fn from_args(ctx: &Context<'_>, err: &mut impl Write) -> Result<Headers, Failure> {
        let args = ctx.args;
        if let Some(path) = &args.with_proof {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Document(format!("{}: {e}", path.display())))?;
            let proof = Proof::from_json(&text).map_err(|e| Failure::Document(e.to_string()))?;
            let v = verify_with(&proof, &ctx.expect, &ctx.anchors).map_err(Failure::Verify)?;
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
            return Node::connect(args, url, err).map(|n| Headers::Node(Box::new(n)));
        }
        Err(Failure::NoHeaderSource(
            "an .ots file is checked against a block header: give --with-proof, --headers or --node".into(),
        ))
    }

    /// The network the headers are on.
    fn network(&self) -> Option<AnchorNetwork> {
        match self {
            Headers::Proof(b) => b.0.anchor.as_ref().map(|a| a.network),
            Headers::File(n, _) => Some(*n),
            Headers::Node(node) => Some(node.network),
        }
    }

    /// How far the header source is trusted.
    fn trust(&self) -> Trust {
        match self {
            Headers::Proof(b) => b.0.anchor.as_ref().map_or(Trust::WorkOnly, |a| a.trust),
            Headers::File(n, _) if n.is_test_network() => Trust::TestNetwork,
            Headers::File(..) => Trust::WorkOnly,
            Headers::Node(_) => Trust::NodeChecked,
        }
    }

    /// The header at `height` on the expected chain, with its proof of work
    /// (and the floor) checked.
    fn at(&self, height: u64, anchors: &TrustAnchors) -> Result<Header, String> {
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
                check_work(*network, anchors.get(*network), h)
                    .map_err(|e| format!("header at height {height}: {e}"))?;
                Ok(*h)
            }
            Headers::Node(node) => {
                let height = u32::try_from(height).map_err(|_| "height out of range")?;
                let hash = node
                    .rpc
                    .block_hash_at(height)
                    .map_err(|e| format!("node: {e}"))?
                    .ok_or_else(|| format!("the node has no block at height {height}"))?;
                node.rpc.header(&hash).map_err(|e| format!("node: {e}"))
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

/// Verifies an `.ots` file: the digest (if a file or digest is given), the
/// operations, and one block attestation against a header source.
fn verify_ots(ctx: &Context<'_>, bytes: &[u8], err: &mut impl Write) -> Result<Outcome, Failure> {
    let args = ctx.args;
    let file =
        DetachedTimestamp::from_bytes(bytes).map_err(|e| Failure::Document(e.to_string()))?;
    let digest = bitcoin::hex::DisplayHex::to_lower_hex_string(&file.digest[..]);
    if let Some(expected) = expected_digest(args)? {
        if expected != file.digest {
            return Err(Failure::Step(
                "digest",
                "the file's SHA-256 is not the timestamp's digest".into(),
            ));
        }
    }
    let attestations = file
        .timestamp
        .replay(&file.digest)
        .map_err(|e| Failure::Step("operations", e.to_string()))?;
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
        return Err(Failure::Step(
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
    let source = Headers::from_args(ctx, err)?;
    let network = source.network();
    if let (Some(expected), Some(n)) = (ctx.expect.network, network) {
        if expected != n {
            return Err(Failure::Step(
                "network",
                format!("the headers are on {n}, expected {expected}"),
            ));
        }
    }
    let warning = match network {
        Some(n) => check_network(n, ctx.expect.network)?,
        None => None,
    };
    let trust = source.trust();
    let mut reasons = Vec::new();
    for (msg, height) in &blocks {
        match source.at(*height, &ctx.anchors) {
            Ok(header) if header.merkle_root.as_byte_array().as_slice() == msg.as_slice() => {
                let confirmations = match &source {
                    Headers::Proof(b) => b.0.anchor.as_ref().map(|a| a.confirmations),
                    Headers::File(..) => None,
                    Headers::Node(node) => u32::try_from(*height)
                        .ok()
                        .and_then(|h| node.check(node.network, h, &header.block_hash(), None).ok())
                        .map(|seen| seen.confirmations),
                };
                let result = json!({
                    "format": "ots",
                    "digest": digest,
                    "block_height": height,
                    "block_hash": header.block_hash(),
                    "block_time": header.time,
                    "network": network.map(|n| n.to_string()),
                    "confirmations": confirmations,
                    "trust": trust.name(),
                });
                let text = format!(
                    "timestamped: digest {digest} (OpenTimestamps file)\nblock:       {} at height {height}, {}\n{}trust:       {}\n",
                    header.block_hash(),
                    format_unix_utc(header.time),
                    confirmations.map_or(String::new(), |c| format!("depth:       {c} confirmation{}\n", plural(c))),
                    trust.name(),
                );
                return Ok(Outcome {
                    json: result,
                    text,
                    trust,
                    warning,
                });
            }
            Ok(_) => reasons.push(format!(
                "block {height}: its Merkle root is not the timestamp's result"
            )),
            Err(e) => reasons.push(e),
        }
    }
    Err(Failure::Step("block", reasons.join("; ")))
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

pub(crate) enum Failure {
    Document(String),
    Verify(aggregator::VerifyError),
    /// A named step beyond the proof document's own (network policy, `.ots`).
    Step(&'static str, String),
    /// The verifier's node does not have the anchor block in its best chain.
    Node(String),
    NoHeaderSource(String),
}

impl Failure {
    fn message(&self) -> String {
        match self {
            Failure::Document(e) => format!("document: {e}"),
            Failure::Verify(e) => e.to_string(),
            Failure::Step(step, e) => format!("{step}: {e}"),
            Failure::Node(e) => format!("node: {e}"),
            Failure::NoHeaderSource(e) => e.clone(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Failure::Document(e) => json!({ "step": "document", "detail": e }),
            Failure::Verify(e) => json!({ "step": e.step, "detail": e.detail }),
            Failure::Step(step, e) => json!({ "step": step, "detail": e }),
            Failure::Node(e) => json!({ "step": "node", "detail": e }),
            Failure::NoHeaderSource(e) => json!({ "step": "header_source", "detail": e }),
        }
    }
}

//! `btcts verify`: the offline verifier on the command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use aggregator::proof::{Proof, ProofError};
use aggregator::verify::{summary, verify, Expect};
use aggregator::{AnchorNetwork, Tag};
use serde_json::json;

/// Arguments of `btcts verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The proof document (JSON), or `-` for standard input.
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
}

/// Exit status for a proof that does not verify.
const INVALID: u8 = 1;
/// Exit status when the proof could not be read at all.
const UNREADABLE: u8 = 2;

pub fn run(args: &VerifyArgs, out: &mut impl Write, err: &mut impl Write) -> ExitCode {
    let text = if args.proof.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&args.proof)
    };
    let text = match text {
        Ok(t) => t,
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
    let result = Proof::from_json(&text)
        .map_err(Failure::Document)
        .and_then(|p| verify(&p, &expect).map_err(Failure::Verify));
    let written = match (&result, args.json) {
        (Ok(v), true) => writeln!(out, "{}", json!({ "valid": true, "result": v })),
        (Ok(v), false) => writeln!(out, "{}proof verified", summary(v)),
        (Err(f), true) => writeln!(out, "{}", json!({ "valid": false, "error": f.to_json() })),
        (Err(f), false) => writeln!(err, "btcts verify: NOT VERIFIED: {}", f.message()),
    };
    if written.is_err() {
        return ExitCode::from(UNREADABLE);
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    }
}

enum Failure {
    Document(ProofError),
    Verify(aggregator::VerifyError),
}

impl Failure {
    fn message(&self) -> String {
        match self {
            Failure::Document(e) => format!("document: {e}"),
            Failure::Verify(e) => e.to_string(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Failure::Document(e) => json!({ "step": "document", "detail": e.to_string() }),
            Failure::Verify(e) => json!({ "step": e.step, "detail": e.detail }),
        }
    }
}

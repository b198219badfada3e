//! `btcts proof <id>`: downloads a record's proof document from a server.

use std::io::Write;
use std::path::PathBuf;

/// Arguments of `btcts proof`.
#[derive(Debug, clap::Args)]
pub struct ProofArgs {
    /// The record id (its leaf hash, 64 hex characters).
    id: String,
    /// The btcts server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Write the proof here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// A read token, if the server requires one.
    #[arg(long)]
    token: Option<String>,
}

pub fn run(args: &ProofArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let id: aggregator::LeafHash = args.id.parse()?;
    let url = format!("{}/v1/records/{id}/proof", args.url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let text = runtime.block_on(async {
        let mut req = reqwest::Client::new().get(&url);
        if let Some(t) = &args.token {
            req = req.bearer_auth(t);
        }
        let response = req.send().await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            anyhow::bail!("{url}: {status}: {body}");
        }
        Ok(body)
    })?;
    // Round-trip through the document type: what is saved is a proof this
    // version can read, in the canonical layout.
    let proof = aggregator::Proof::from_json(&text)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, proof.to_json())?;
            writeln!(out, "proof of {id} written to {}", path.display())?;
        }
        None => write!(out, "{}", proof.to_json())?,
    }
    Ok(())
}

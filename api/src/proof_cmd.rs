//! `btcts proof <id>`: downloads a record's proof from a server, as a proof
//! document (JSON), an OpenTimestamps file or the leaf preimage.

use std::io::Write;
use std::path::PathBuf;

/// Arguments of `btcts proof`.
#[derive(Debug, clap::Args)]
pub struct ProofArgs {
    /// The record id (its leaf hash, 64 hex characters).
    id: String,
    /// The btcts server (`http://` or `https://`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A PEM file of CA certificates to trust for an https:// --url,
    /// besides the system roots.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// Write the proof here instead of standard output (for --ots and
    /// --leaf the default is `<id>.ots` / `<id>.leaf`).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// A read token, if the server requires one.
    #[arg(long)]
    token: Option<String>,
    /// Download the OpenTimestamps `.ots` file instead of the JSON document.
    #[arg(long, conflicts_with = "leaf")]
    ots: bool,
    /// Download the leaf preimage: the file whose SHA-256 the `.ots` file
    /// timestamps (`ots verify -f`).
    #[arg(long)]
    leaf: bool,
}

pub fn run(args: &ProofArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let id: aggregator::LeafHash = args.id.parse()?;
    let format = match (args.ots, args.leaf) {
        (true, _) => "ots",
        (_, true) => "leaf",
        _ => "json",
    };
    let url = format!(
        "{}/v1/records/{id}/proof?format={format}",
        args.url.trim_end_matches('/')
    );
    let ca = match &args.ca {
        Some(path) => Some(btcts_feeder::CaFile::read("--ca", path)?),
        None => None,
    };
    let client = btcts_feeder::client_builder(ca.as_ref())?.build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = runtime.block_on(async {
        let mut req = client.get(&url);
        if let Some(t) = &args.token {
            req = req.bearer_auth(t);
        }
        let response = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {}", btcts_feeder::causes(&e)))?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            anyhow::bail!("{url}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body.to_vec())
    })?;
    let (bytes, default_name) = match format {
        // Round-trip through the document type: what is saved is a proof
        // this version can read, in the canonical layout.
        "json" => (
            aggregator::Proof::from_json(std::str::from_utf8(&body)?)?
                .to_json()
                .into_bytes(),
            None,
        ),
        "ots" => {
            let file = aggregator::ots::DetachedTimestamp::from_bytes(&body)?;
            anyhow::ensure!(
                &file.digest == id.as_bytes(),
                "the server sent a timestamp of another digest"
            );
            (file.to_bytes()?, Some(format!("{id}.ots")))
        }
        _ => {
            let record = aggregator::leaf::decode(&body)?;
            anyhow::ensure!(
                aggregator::leaf::leaf_hash(&record) == id,
                "the server sent the preimage of another record"
            );
            (body, Some(format!("{id}.leaf")))
        }
    };
    match args.output.clone().or(default_name.map(PathBuf::from)) {
        Some(path) => {
            std::fs::write(&path, bytes)?;
            writeln!(out, "{format} proof of {id} written to {}", path.display())?;
        }
        None => out.write_all(&bytes)?,
    }
    Ok(())
}

//! A real consumer chain: `btcts-consumerd` (the Go module in `ibc-relay/go`:
//! Cosmos SDK, ibc-go with 06-solomachine, `x/btcts`) run as a
//! single-validator localnet in a temporary home on free loopback ports,
//! stopped on drop.
//!
//! [`ConsumerChain::binary`] builds the binary once per process (and, under a
//! file lock, once per target dir at a time): Go's build cache makes later
//! builds quick, and a clean clone only needs the Go module proxy.
//! [`ConsumerChain::start`] runs `init`, `keys add` (test keyring), `genesis
//! add-genesis-account`, `gentx` and `collect-gentxs`, writes fast-block and
//! loopback-only settings into `config.toml` / `app.toml`, and starts the node
//! with its output in `<home>/node.log`.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tempfile::TempDir;

mod binary;
mod cli;
mod files;
use files::{merge, set_toml, tail};

/// The chain's staking and fee denomination.
pub const DENOM: &str = "stake";
/// The validator's key name in the test keyring.
pub const VALIDATOR_KEY: &str = "validator";
/// The validator account's genesis balance.
const VALIDATOR_COINS: &str = "100000000000000stake";
/// What the validator bonds in its gentx.
const VALIDATOR_STAKE: &str = "1000000000stake";
/// How long the node may take to start (or restart) and make blocks.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd node may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How to set up the chain.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// The chain id.
    pub chain_id: String,
    /// Genesis accounts besides the validator: bech32 address and coins
    /// (`"1000000stake"`, or several, comma-separated).
    pub accounts: Vec<(String, String)>,
    /// Merged into `app_state.btcts` of the genesis (objects merge key by
    /// key; anything else replaces). x/btcts has no default for its source
    /// chains and Bitcoin checkpoint, so the chain does not start without
    /// them: see [`btcts_genesis`].
    pub btcts_genesis: Option<Value>,
    /// Staking `unbonding_time`; the SDK default (21 days) when `None`.
    pub unbonding_time: Option<Duration>,
    /// Block time (CometBFT `timeout_commit`).
    pub block_time: Duration,
    /// The node's `minimum-gas-prices` (`"0.0025stake"`).
    pub min_gas_prices: String,
    /// The address allowed to change parameters: app.toml `[btcts]
    /// authority` and the consensus parameter `authority`. `None`: the
    /// chain's default (the gov module account's address, held by nobody).
    pub authority: Option<String>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            chain_id: "btcts-consumer-1".into(),
            accounts: Vec::new(),
            btcts_genesis: None,
            unbonding_time: None,
            block_time: Duration::from_millis(300),
            min_gas_prices: format!("0.0025{DENOM}"),
            authority: None,
        }
    }
}

impl ChainOptions {
    /// Adds a genesis account holding `amount` of [`DENOM`].
    pub fn fund(mut self, address: &str, amount: u128) -> Self {
        self.accounts
            .push((address.to_owned(), format!("{amount}{DENOM}")));
        self
    }
}

/// An `app_state.btcts` genesis patch (proto JSON, as x/btcts reads it):
/// the anchor `network` (`"regtest"`, `"litecoin-regtest"`, …), the
/// `source_chains` whose records are accepted, the depth `k`, and the
/// trusted Bitcoin header (the checkpoint) at `height`.
pub fn btcts_genesis(
    network: &str,
    source_chains: &[&str],
    k: u32,
    height: u32,
    header: &[u8; 80],
) -> Value {
    use base64::Engine as _;
    json!({
        "params": {
            "network": network,
            "source_chains": source_chains,
            "k": k,
            "trusted_header": {
                "height": height,
                "header": base64::engine::general_purpose::STANDARD.encode(header),
            },
        }
    })
}

/// The loopback ports of one chain.
#[derive(Debug, Clone, Copy)]
struct Ports {
    rpc: u16,
    p2p: u16,
    grpc: u16,
}

/// A running consumer chain. Dropping it stops the node and removes its home.
#[derive(Debug)]
pub struct ConsumerChain {
    binary: PathBuf,
    home: TempDir,
    opts: ChainOptions,
    ports: Ports,
    validator: String,
    child: Option<Child>,
    /// The highest height seen, so a restart waits for a new block.
    last_height: u64,
}

/// Whether an HTTP/2 server (the SDK's gRPC server) answers on `port`: it
/// answers the client preface with its SETTINGS frame. A TCP connect alone
/// is not enough: the SDK keeps the node running when its gRPC listener
/// fails to bind, and on loopback a connection to a port nobody listens on
/// can connect to itself.
fn grpc_answers(port: u16) -> bool {
    let probe = || -> std::io::Result<bool> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        if stream.local_addr()? == stream.peer_addr()? {
            return Ok(false);
        }
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")?;
        // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
        stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])?;
        let mut head = [0u8; 9];
        stream.read_exact(&mut head)?;
        // The server's own SETTINGS (type 4, not an ACK) on stream 0.
        Ok(head[3] == 4 && head[4] & 1 == 0 && head[5..] == [0, 0, 0, 0])
    };
    probe().unwrap_or(false)
}

/// A minimal HTTP GET against the CometBFT RPC, returning its JSON `result`.
fn rpc_get(port: u16, path: &str) -> Result<Value> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .context("RPC answer without a body")?;
    let value: Value = serde_json::from_str(body).context("RPC answer is not JSON")?;
    value
        .get("result")
        .cloned()
        .ok_or_else(|| anyhow!("RPC {path}: {value}"))
}

impl ConsumerChain {
    /// The `btcts-consumerd` binary, built on first use in this process.
    pub fn binary() -> Result<PathBuf> {
        static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        BINARY
            .get_or_init(|| binary::build_binary().map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|e| anyhow!("building btcts-consumerd: {e}"))
    }

    /// Sets up a new chain and starts it; returns once it has made block 2.
    pub fn start(opts: ChainOptions) -> Result<ConsumerChain> {
        let binary = ConsumerChain::binary()?;
        let home = tempfile::Builder::new().prefix("btcts-chain-").tempdir()?;
        let [rpc, p2p, grpc] = btc_submitter::regtest::loopback_ports(3)?[..] else {
            bail!("three ports asked, other than three given");
        };
        let ports = Ports { rpc, p2p, grpc };
        let mut chain = ConsumerChain {
            binary,
            home,
            opts,
            ports,
            validator: String::new(),
            child: None,
            last_height: 0,
        };
        chain.init()?;
        chain.spawn()?;
        Ok(chain)
    }

    /// Runs the binary with `args` and `--home`, failing on a non-zero exit.
    fn run(&self, args: &[&str]) -> Result<Output> {
        let output = Command::new(&self.binary)
            .args(args)
            .arg("--home")
            .arg(self.home.path())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running btcts-consumerd {}", args.join(" ")))?;
        if !output.status.success() {
            bail!(
                "btcts-consumerd {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        Ok(output)
    }

    fn init(&mut self) -> Result<()> {
        let chain_id = self.opts.chain_id.clone();
        self.run(&["init", "validator", "--chain-id", &chain_id])?;
        let key = self.run(&[
            "keys",
            "add",
            VALIDATOR_KEY,
            "--keyring-backend",
            "test",
            "--output",
            "json",
        ])?;
        // The key's JSON goes to stdout or stderr depending on the SDK version.
        let text = [key.stdout, key.stderr].concat();
        let text = String::from_utf8_lossy(&text);
        let json_start = text.find('{').context("keys add printed no JSON")?;
        let info: Value = serde_json::Deserializer::from_str(&text[json_start..])
            .into_iter()
            .next()
            .context("keys add printed no JSON")??;
        self.validator = info["address"]
            .as_str()
            .context("keys add: no address")?
            .to_owned();
        let validator = self.validator.clone();
        self.run(&[
            "genesis",
            "add-genesis-account",
            &validator,
            VALIDATOR_COINS,
        ])?;
        for (address, coins) in self.opts.accounts.clone() {
            self.run(&["genesis", "add-genesis-account", &address, &coins])?;
        }
        self.edit_genesis()?;
        self.run(&[
            "genesis",
            "gentx",
            VALIDATOR_KEY,
            VALIDATOR_STAKE,
            "--chain-id",
            &chain_id,
            "--keyring-backend",
            "test",
        ])?;
        self.run(&["genesis", "collect-gentxs"])?;
        self.write_config()
    }

    fn edit_genesis(&self) -> Result<()> {
        let path = self.home.path().join("config").join("genesis.json");
        let mut genesis: Value = serde_json::from_str(&fs::read_to_string(&path)?)
            .context("genesis.json is not JSON")?;
        let state = &mut genesis["app_state"];
        state["staking"]["params"]["bond_denom"] = json!(DENOM);
        if let Some(t) = self.opts.unbonding_time {
            state["staking"]["params"]["unbonding_time"] = json!(format!("{}s", t.as_secs()));
        }
        if let Some(patch) = &self.opts.btcts_genesis {
            if state.get("btcts").is_none() {
                state["btcts"] = json!({});
            }
            merge(&mut state["btcts"], patch);
        }
        if let Some(authority) = &self.opts.authority {
            genesis["consensus"]["params"]["authority"] = json!({ "authority": authority });
        }
        fs::write(&path, serde_json::to_vec_pretty(&genesis)?)?;
        Ok(())
    }

    fn write_config(&self) -> Result<()> {
        let config = self.home.path().join("config");
        let s = |v: String| toml::Value::String(v);
        let commit = format!("{}ms", self.opts.block_time.as_millis());
        set_toml(
            &config.join("config.toml"),
            &[
                (
                    "rpc.laddr",
                    s(format!("tcp://127.0.0.1:{}", self.ports.rpc)),
                ),
                ("rpc.pprof_laddr", s(String::new())),
                (
                    "p2p.laddr",
                    s(format!("tcp://127.0.0.1:{}", self.ports.p2p)),
                ),
                ("p2p.pex", toml::Value::Boolean(false)),
                ("p2p.addr_book_strict", toml::Value::Boolean(false)),
                ("p2p.persistent_peers", s(String::new())),
                ("p2p.seeds", s(String::new())),
                ("consensus.timeout_commit", s(commit)),
                ("instrumentation.prometheus", toml::Value::Boolean(false)),
            ],
        )?;
        set_toml(
            &config.join("app.toml"),
            &[
                ("minimum-gas-prices", s(self.opts.min_gas_prices.clone())),
                ("api.enable", toml::Value::Boolean(false)),
                ("grpc.enable", toml::Value::Boolean(true)),
                ("grpc.address", s(format!("127.0.0.1:{}", self.ports.grpc))),
                ("grpc-web.enable", toml::Value::Boolean(false)),
                (
                    "btcts.authority",
                    s(self.opts.authority.clone().unwrap_or_default()),
                ),
            ],
        )?;
        set_toml(
            &config.join("client.toml"),
            &[
                ("chain-id", s(self.opts.chain_id.clone())),
                ("keyring-backend", s("test".into())),
                ("node", s(self.node())),
                ("output", s("json".into())),
            ],
        )
    }

    /// The node's log file (both runs of a restarted chain).
    pub fn log_path(&self) -> PathBuf {
        self.home.path().join("node.log")
    }

    fn spawn(&mut self) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.binary)
            .arg("start")
            .arg("--home")
            .arg(self.home.path())
            .args(["--log_no_color", "--log_level", "info"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting btcts-consumerd")?;
        self.child = Some(child);
        let want = (self.last_height + 1).max(2);
        self.wait_for_height(want, START_TIMEOUT)
            .with_context(|| format!("chain log:\n{}", tail(&self.log_path(), 40)))
    }

    /// Waits until the chain has made block `height` and its gRPC port
    /// answers HTTP/2.
    pub fn wait_for_height(&mut self, height: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut seen = None;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("btcts-consumerd exited ({status}) before block {height}");
                }
            }
            if let Ok(h) = self.height() {
                seen = Some(h);
                if h >= height && grpc_answers(self.ports.grpc) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let grpc = if grpc_answers(self.ports.grpc) {
                    "answers"
                } else {
                    "does not answer HTTP/2"
                };
                bail!(
                    "no block {height} within {timeout:?} (last height seen: {}; gRPC on port {} {grpc})",
                    seen.map_or("none".into(), |h| h.to_string()),
                    self.ports.grpc,
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The latest block height (CometBFT RPC `/status`).
    pub fn height(&mut self) -> Result<u64> {
        let status = rpc_get(self.ports.rpc, "/status")?;
        let height: u64 = status["sync_info"]["latest_block_height"]
            .as_str()
            .context("status without a height")?
            .parse()?;
        self.last_height = self.last_height.max(height);
        Ok(height)
    }

    /// `http://127.0.0.1:PORT` of the Cosmos SDK gRPC server.
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.grpc)
    }

    /// `http://127.0.0.1:PORT` of the CometBFT RPC.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.rpc)
    }

    /// The `--node` argument of CLI commands.
    fn node(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.ports.rpc)
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.opts.chain_id
    }

    /// The node's home directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The validator's account address (key [`VALIDATOR_KEY`] in the test
    /// keyring), which signs [`ConsumerChain::tx`].
    pub fn validator_address(&self) -> &str {
        &self.validator
    }

    /// Whether the node process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the node: SIGTERM, then SIGKILL if it has not exited within
    /// 15 s. The home and ports are kept for [`ConsumerChain::restart`].
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("sending SIGTERM")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Kills the node with SIGKILL (a crash).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Stops the node if it runs, and starts it again on the same home and
    /// ports; returns once it has made a block beyond the last one seen.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }
}

impl Drop for ConsumerChain {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// What the start-up wait must not take for the chain's gRPC server: a
    /// port nobody listens on, and a listener that speaks something else
    /// (CometBFT's P2P port, say).
    #[test]
    fn only_an_http2_server_counts_as_grpc_answering() -> Result<()> {
        let port = btc_submitter::regtest::loopback_port()?;
        assert!(!grpc_answers(port), "nothing listens on {port}");

        let other = TcpListener::bind("127.0.0.1:0")?;
        let port = other.local_addr()?.port();
        let server = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut conn, _) = other.accept()?;
            conn.write_all(b"SSH-2.0-not-http2\r\n\r\n")?;
            // The probe's preface; it may hang up (even with a reset) first.
            let _ = conn.read(&mut [0u8; 64]);
            Ok(())
        });
        assert!(!grpc_answers(port), "a non-HTTP/2 listener on {port}");
        server
            .join()
            .map_err(|_| anyhow!("server thread panicked"))??;
        Ok(())
    }
}

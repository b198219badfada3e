//! The node's command line: queries, signed transactions waited for into
//! a block, balances.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{ConsumerChain, DENOM, VALIDATOR_KEY};

/// How long `tx` waits for its transaction to be in a block.
const TX_TIMEOUT: Duration = Duration::from_secs(30);
/// One round of `query wait-tx` within [`TX_TIMEOUT`].
const WAIT_TX_ROUND: Duration = Duration::from_secs(5);

impl ConsumerChain {
    /// `btcts-consumerd query <args> --node <rpc> -o json`, parsed.
    pub fn query(&self, args: &[&str]) -> Result<Value> {
        let node = self.node();
        let mut full = vec!["query"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--node", &node, "-o", "json"]);
        // SDK v0.54 now and then refuses a query that arrives while a
        // block is committed (code 26, "context did not contain latest
        // block height"): ask again.
        let mut attempt = 0;
        let output = loop {
            match self.run(&full) {
                Err(e) if attempt < 5 && format!("{e:#}").contains("latest block height") => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => break other?,
            }
        };
        serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "query {}: not JSON: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// `btcts-consumerd tx <args>`, signed by the validator key (unless
    /// `args` name another `--from`) with gas estimated and priced at the
    /// node's minimum gas price, broadcast in sync mode; waits until the
    /// transaction is in a block and returns its result. A transaction
    /// refused by the mempool or failed in its block is an error carrying its
    /// code and log.
    pub fn tx(&self, args: &[&str]) -> Result<Value> {
        let node = self.node();
        let chain_id = self.opts.chain_id.clone();
        let gas_prices = if self.opts.min_gas_prices.is_empty() {
            format!("0{DENOM}")
        } else {
            self.opts.min_gas_prices.clone()
        };
        let defaults: [(&str, &str); 7] = [
            ("--from", VALIDATOR_KEY),
            ("--keyring-backend", "test"),
            ("--chain-id", &chain_id),
            ("--node", &node),
            ("--gas", "auto"),
            ("--gas-adjustment", "1.5"),
            ("--gas-prices", &gas_prices),
        ];
        let given = |flag: &str| {
            args.iter()
                .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
        };
        let mut full = vec!["tx"];
        full.extend_from_slice(args);
        let fees_given = given("--fees");
        for (flag, value) in defaults {
            let priced = flag == "--gas-prices" || flag == "--gas-adjustment";
            if !(given(flag) || priced && fees_given) {
                full.extend_from_slice(&[flag, value]);
            }
        }
        full.extend_from_slice(&["--yes", "--broadcast-mode", "sync", "-o", "json"]);
        let output = self.run(&full)?;
        let text = String::from_utf8_lossy(&output.stdout);
        let json_start = text.find('{').context("tx printed no JSON")?;
        let sent: Value = serde_json::from_str(text[json_start..].trim())
            .with_context(|| format!("tx {}: not JSON: {text}", args.join(" ")))?;
        check_code(&sent, "refused")?;
        let hash = sent["txhash"].as_str().context("tx without a hash")?;
        let included = self.wait_tx(hash)?;
        check_code(&included, "failed")?;
        Ok(included)
    }

    /// `query wait-tx` for `hash`, in rounds of [`WAIT_TX_ROUND`] up to
    /// [`TX_TIMEOUT`]. One round can miss a transaction that is in a block:
    /// wait-tx subscribes to new transactions and then looks the hash up in
    /// the node's index, and CometBFT indexes a block's transactions
    /// asynchronously after announcing them; a block committed just before
    /// the subscription whose index entry lands just after the lookup is
    /// seen by neither. The next round's lookup finds it.
    fn wait_tx(&self, hash: &str) -> Result<Value> {
        let round = format!("{}s", WAIT_TX_ROUND.as_secs());
        let started = Instant::now();
        loop {
            match self.query(&["wait-tx", hash, "--timeout", &round]) {
                Err(e)
                    if started.elapsed() + WAIT_TX_ROUND <= TX_TIMEOUT
                        && format!("{e:#}").contains("timed out waiting for transaction") => {}
                other => return other,
            }
        }
    }

    /// The balance of `address` in `denom`.
    pub fn balance(&self, address: &str, denom: &str) -> Result<u128> {
        let answer = self.query(&["bank", "balance", address, denom])?;
        let amount = answer["balance"]["amount"].as_str().unwrap_or("0");
        amount
            .parse()
            .with_context(|| format!("balance {amount:?} of {address}"))
    }
}

/// An error for a transaction result with a non-zero code.
fn check_code(result: &Value, what: &str) -> Result<()> {
    let code = result["code"].as_u64().unwrap_or(0);
    if code != 0 {
        bail!(
            "transaction {} {what}: code {code} ({}): {}",
            result["txhash"].as_str().unwrap_or("?"),
            result["codespace"].as_str().unwrap_or(""),
            result["raw_log"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

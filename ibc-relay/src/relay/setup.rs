//! Setting up a consumer chain (client, connection, channel) and rotating
//! the solo-machine key: steps recorded as they land, proof inputs fixed
//! before they are signed, so any interruption is finished by a re-run.

use super::events::{attribute, client_state_of, consensus_state_of, revision_number};
use super::*;

impl Relay {
    /// Gets `message` of `step` into a block, or says why not.
    fn setup_tx(
        &mut self,
        step: &str,
        build: impl FnOnce() -> Result<Any, TxError>,
    ) -> Result<TxResult, RelayError> {
        info!(chain = %self.config.chain_id, step, "IBC setup");
        match self
            .sender
            .submit(self.node.as_ref(), &self.store, step, build)?
        {
            TxOutcome::Included(r) if r.code == 0 => Ok(r),
            TxOutcome::Included(r) => Err(RelayError::Refused {
                step: step.into(),
                log: r.log,
            }),
            TxOutcome::Rejected(b) => Err(RelayError::Refused {
                step: step.into(),
                log: b.log,
            }),
        }
    }

    /// Creates the client and runs both handshakes, resuming wherever an
    /// earlier run stopped. `new_client` starts over with a new client
    /// (records not yet delivered are re-sent over it).
    pub fn setup(&mut self, new_client: bool) -> Result<SetupState, RelayError> {
        let mut s = self.store.setup()?;
        if new_client && s.client_id.is_some() {
            self.store.set_pending(None)?;
            self.store.reopen_for_new_client()?;
            s = SetupState::default();
            self.store.set_setup(&s)?;
        }
        let relayer = self.relayer().to_owned();
        if s.client_id.is_none() {
            let state = self.signer.state()?;
            let ts = self.timestamp()?;
            let r = self.setup_tx("create_client", || {
                Ok(msgs::create_client(&state, ts, &relayer))
            })?;
            s.client_id = Some(attribute(&r, "create_client", "client_id")?);
            self.store.set_setup(&s)?;
        }
        if s.connection_id.is_none() {
            let link = self.link(&s);
            let r = self.setup_tx("conn_open_init", || {
                Ok(msgs::conn_open_init(&link, &relayer))
            })?;
            s.connection_id = Some(attribute(&r, "connection_open_init", "connection_id")?);
            self.store.set_setup(&s)?;
        }
        if !s.connection_open {
            let intent = match s.intent.clone() {
                Some(i) => i,
                None => {
                    let mut i = ProofIntent {
                        sequence: self.signer.state()?.sequence,
                        timestamp: self.timestamp()?,
                        consumer_height: 0,
                        consumer_consensus: Vec::new(),
                        consumer_client: Vec::new(),
                    };
                    if self.config.legacy_connection_proofs {
                        let block = self.node.latest_block()?;
                        i.consumer_height = block.height;
                        i.consumer_consensus = consensus_state_of(&block).encode_to_vec();
                        i.consumer_client = client_state_of(&block).encode_to_vec();
                    }
                    s.intent = Some(i.clone());
                    self.store.set_setup(&s)?;
                    i
                }
            };
            let link = self.link(&s);
            let signer = self.signer.clone();
            let chain = self.config.chain_id.to_string();
            let legacy = self.config.legacy_connection_proofs;
            self.setup_tx("conn_open_ack", || {
                let decode =
                    |b: &[u8]| Any::decode(b).map_err(|e| StateError(format!("stored state: {e}")));
                let (client, consensus) = if legacy {
                    (
                        decode(&intent.consumer_client)?,
                        decode(&intent.consumer_consensus)?,
                    )
                } else {
                    (Any::default(), Any::default())
                };
                let state = legacy.then_some(msgs::StateProofs {
                    consumer_client: &client,
                    consumer_consensus: &consensus,
                    consensus_height: Height {
                        revision_number: revision_number(&chain),
                        revision_height: intent.consumer_height,
                    },
                });
                msgs::conn_open_ack(
                    &signer,
                    intent.sequence,
                    &link,
                    state,
                    intent.timestamp,
                    &relayer,
                )
                .map(|(msg, _)| msg)
                .map_err(|e| StateError(e.to_string()).into())
            })?;
            s.connection_open = true;
            s.intent = None;
            self.store.set_setup(&s)?;
        }
        if s.channel_id.is_none() {
            let link = self.link(&s);
            let r = self.setup_tx("chan_open_init", || {
                Ok(msgs::chan_open_init(&link, &relayer))
            })?;
            s.channel_id = Some(attribute(&r, "channel_open_init", "channel_id")?);
            self.store.set_setup(&s)?;
        }
        if !s.channel_open {
            let (sequence, timestamp) = match &s.intent {
                Some(i) => (i.sequence, i.timestamp),
                None => {
                    let i = ProofIntent {
                        sequence: self.signer.state()?.sequence,
                        timestamp: self.timestamp()?,
                        consumer_height: 0,
                        consumer_consensus: Vec::new(),
                        consumer_client: Vec::new(),
                    };
                    s.intent = Some(i.clone());
                    self.store.set_setup(&s)?;
                    (i.sequence, i.timestamp)
                }
            };
            let link = self.link(&s);
            let signer = self.signer.clone();
            self.setup_tx("chan_open_ack", || {
                msgs::chan_open_ack(&signer, sequence, &link, timestamp, &relayer)
                    .map(|(msg, _)| msg)
                    .map_err(|e| StateError(e.to_string()).into())
            })?;
            s.channel_open = true;
            s.intent = None;
            self.store.set_setup(&s)?;
        }
        info!(chain = %self.config.chain_id, client = ?s.client_id, connection = ?s.connection_id, channel = ?s.channel_id, "IBC setup complete");
        Ok(s)
    }

    /// Rotates the solo-machine key of this chain's client to `new_key`
    /// (`MsgUpdateClient` with a header signed by the current key). Resumes
    /// an interrupted rotation; refuses while a packet's proof is in flight.
    pub fn rotate_key(&mut self, new_key: SecretKey) -> Result<(), RelayError> {
        let mut s = self.store.setup()?;
        let refuse = |log: String| RelayError::Refused {
            step: "rotate_key".into(),
            log,
        };
        if !s.complete() {
            return Err(refuse("the setup is not complete".into()));
        }
        if let Some(p) = self.store.pending()?.filter(|p| p.purpose != "rotate_key") {
            return Err(refuse(format!(
                "a transaction for {} is in flight: run btcts until it is done",
                p.purpose
            )));
        }
        if let Some(p) = self.store.next_open()?.filter(|p| p.proof.is_some()) {
            return Err(refuse(format!(
                "packet {} is being delivered: run btcts until it is, then rotate",
                p.sequence
            )));
        }
        let new_public = new_key.public_key(&bitcoin::secp256k1::Secp256k1::signing_only());
        let new_hex = new_public.to_string();
        let intent = match s.rotation.clone() {
            Some(i) => i,
            None => {
                let i = crate::state::RotationIntent {
                    sequence: self.signer.state()?.sequence,
                    timestamp: self.timestamp()?,
                    new_public_key: new_hex.clone(),
                };
                s.rotation = Some(i.clone());
                self.store.set_setup(&s)?;
                i
            }
        };
        if intent.new_public_key != new_hex {
            return Err(refuse(format!(
                "a rotation to key {} is under way: finish it with that key file",
                intent.new_public_key
            )));
        }
        let header = match self.signer.rotation_header(intent.sequence)? {
            Some(h) => h,
            None => {
                let state = self.signer.state()?;
                if state.sequence != intent.sequence {
                    return Err(refuse(format!(
                        "sequence {} was used for something else",
                        intent.sequence
                    )));
                }
                self.signer
                    .rotate(new_key, &state.diversifier, intent.timestamp)?
            }
        };
        let link = self.link(&s);
        let relayer = self.relayer().to_owned();
        self.setup_tx("rotate_key", || {
            Ok(msgs::update_client(&link, &header, &relayer))
        })?;
        s.rotation = None;
        self.store.set_setup(&s)?;
        info!(chain = %self.config.chain_id, key = %new_hex, "solo-machine key rotated");
        Ok(())
    }
}

//! The consumer's `btcts` application and its router.

use super::*;

// ---------------------------------------------------------------- app module + router
/// The consumer's `btcts` application: checks each packet from its trusted
/// Bitcoin header and acknowledges with the result.
#[derive(Debug)]
pub struct BtctsModule {
    /// The Bitcoin header this chain trusts.
    pub trusted: TrustedHeader,
    /// What it expects of packets.
    pub params: ConsumerParams,
    /// Every packet received, in order, with the app's verdict.
    pub received: Vec<(Packet, Result<VerifiedPacket, PacketError>)>,
}

impl BtctsModule {
    /// An app trusting `trusted` with `params`.
    pub fn new(trusted: TrustedHeader, params: ConsumerParams) -> BtctsModule {
        BtctsModule {
            trusted,
            params,
            received: Vec::new(),
        }
    }
}

/// The acknowledgement the app writes for a verdict.
pub fn acknowledgement(verdict: &Result<VerifiedPacket, PacketError>) -> Acknowledgement {
    use base64::Engine;
    let status = match verdict {
        Ok(v) => {
            let ack = btcts_consumer::TimestampAck {
                chain_id: v.record.chain_id.to_string(),
                height: v.record.height,
                bitcoin_height: v.bitcoin_height,
                depth: v.depth,
            };
            let text = base64::engine::general_purpose::STANDARD.encode(ack.encode_to_vec());
            StatusValue::new(text).map(AcknowledgementStatus::success)
        }
        Err(e) => StatusValue::new(e.to_string()).map(AcknowledgementStatus::error),
    };
    // Neither text is empty.
    status
        .unwrap_or_else(|_| {
            AcknowledgementStatus::error(StatusValue::new("error").expect("non-empty"))
        })
        .into()
}

const BTCTS_VERSION: &str = "btcts-1";

impl Module for BtctsModule {
    fn on_chan_open_init_validate(
        &self,
        order: Order,
        _: &[ConnectionId],
        _: &PortId,
        _: &ChannelId,
        _: &ChanCounterparty,
        v: &ChanVersion,
    ) -> Result<ChanVersion, ChannelError> {
        if order != Order::Unordered || v.as_str() != BTCTS_VERSION {
            return Err(ChannelError::InvalidState {
                expected: "UNORDERED/btcts-1".into(),
                actual: format!("{order}/{v}"),
            });
        }
        Ok(v.clone())
    }
    fn on_chan_open_init_execute(
        &mut self,
        _: Order,
        _: &[ConnectionId],
        _: &PortId,
        _: &ChannelId,
        _: &ChanCounterparty,
        v: &ChanVersion,
    ) -> Result<(ModuleExtras, ChanVersion), ChannelError> {
        Ok((ModuleExtras::empty(), v.clone()))
    }
    fn on_chan_open_try_validate(
        &self,
        _: Order,
        _: &[ConnectionId],
        _: &PortId,
        _: &ChannelId,
        _: &ChanCounterparty,
        _: &ChanVersion,
    ) -> Result<ChanVersion, ChannelError> {
        Err(ChannelError::InvalidState {
            expected: "init side only".into(),
            actual: "try".into(),
        })
    }
    fn on_chan_open_try_execute(
        &mut self,
        _: Order,
        _: &[ConnectionId],
        _: &PortId,
        _: &ChannelId,
        _: &ChanCounterparty,
        _: &ChanVersion,
    ) -> Result<(ModuleExtras, ChanVersion), ChannelError> {
        Err(ChannelError::InvalidState {
            expected: "init side only".into(),
            actual: "try".into(),
        })
    }
    fn on_chan_open_ack_validate(
        &self,
        _: &PortId,
        _: &ChannelId,
        v: &ChanVersion,
    ) -> Result<(), ChannelError> {
        if v.as_str() != BTCTS_VERSION {
            return Err(ChannelError::InvalidState {
                expected: BTCTS_VERSION.into(),
                actual: v.to_string(),
            });
        }
        Ok(())
    }
    fn on_recv_packet_execute(
        &mut self,
        packet: &Packet,
        _: &Signer,
    ) -> (ModuleExtras, Option<Acknowledgement>) {
        let verdict = verify_packet(&packet.data, &self.trusted, &self.params);
        let ack = acknowledgement(&verdict);
        self.received.push((packet.clone(), verdict));
        (ModuleExtras::empty(), Some(ack))
    }
    fn on_acknowledgement_packet_validate(
        &self,
        _: &Packet,
        _: &Acknowledgement,
        _: &Signer,
    ) -> Result<(), ChannelError> {
        Ok(())
    }
    fn on_acknowledgement_packet_execute(
        &mut self,
        _: &Packet,
        _: &Acknowledgement,
        _: &Signer,
    ) -> (ModuleExtras, Result<(), ChannelError>) {
        (ModuleExtras::empty(), Ok(()))
    }
    fn on_timeout_packet_validate(&self, _: &Packet, _: &Signer) -> Result<(), ChannelError> {
        Ok(())
    }
    fn on_timeout_packet_execute(
        &mut self,
        _: &Packet,
        _: &Signer,
    ) -> (ModuleExtras, Result<(), ChannelError>) {
        (ModuleExtras::empty(), Ok(()))
    }
}

#[derive(Debug)]
pub struct BtctsRouter {
    pub module: BtctsModule,
}
impl Router for BtctsRouter {
    fn get_route(&self, id: &ModuleId) -> Option<&dyn Module> {
        (id == &ModuleId::new("btcts".into())).then_some(&self.module as &dyn Module)
    }
    fn get_route_mut(&mut self, id: &ModuleId) -> Option<&mut dyn Module> {
        if id == &ModuleId::new("btcts".into()) {
            Some(&mut self.module)
        } else {
            None
        }
    }
    fn lookup_module(&self, port: &PortId) -> Option<ModuleId> {
        (port.as_str() == "btcts").then(|| ModuleId::new("btcts".into()))
    }
}

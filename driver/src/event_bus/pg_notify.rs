//! The Postgres bus: LISTEN/NOTIFY wake-ups, the feed as the truth.
//!
//! The extension notifies channel `forgeerp_events` after every committed
//! append, so `publish` has nothing to do. A subscription owns a dedicated
//! connection (a pooled one would drop notifications), `LISTEN`s, and on each
//! wake-up — and every `poll_interval` as a fallback — reads
//! `forgeerp.read_all` from its checkpoint. After a lost connection it
//! reconnects with bounded exponential backoff and catches up from the
//! checkpoint, so nothing committed meanwhile is missed. Delivery is in feed
//! order, at least once (exactly once while the subscriber keeps running).

use super::{BusError, EventBus, Subscription};
use crate::connection::{ConnectError, ConnectionError, ConnectionSettings};
use crate::event::{FeedPosition, StoredEvent};
use crate::event_store::postgres::{row_to_event, FeedPage};
use crate::event_store::EventStoreError;
use crate::ids::TenantId;
use forgeerp_contract::names::CHANNEL;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

/// First re-read after a wake-up that found nothing; doubles up to `RECHECK_LIMIT`.
const RECHECK_FIRST: Duration = Duration::from_millis(20);
const RECHECK_LIMIT: Duration = Duration::from_millis(640);

/// How a subscription behaves.
#[derive(Clone, Debug)]
pub struct SubscriptionConfig {
    /// Read the feed this often even without a wake-up.
    pub poll_interval: Duration,
    /// Events read per `read_all` call.
    pub page_size: i32,
    /// First wait before reconnecting; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// Events buffered for a slow consumer before the reader waits.
    pub buffer: usize,
    /// End the subscription (its `recv` returns None, its link says
    /// [`Link::GaveUp`]) after this long without a connection; None: retry
    /// for ever.
    pub give_up_after: Option<Duration>,
}

/// The state of a subscription's connection ([`PgNotifySubscription::link`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Not connected yet.
    Connecting,
    /// Connected and listening.
    Connected,
    /// The connection was lost or could not be made (why); retrying.
    Lost(String),
    /// No connection for `give_up_after`: the subscription has ended (why).
    GaveUp(String),
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        SubscriptionConfig {
            poll_interval: Duration::from_secs(1),
            page_size: 2000,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            buffer: 4096,
            give_up_after: None,
        }
    }
}

/// The bus over a Postgres database with the `forgeerp` extension.
#[derive(Clone, Debug)]
pub struct PgNotifyEventBus {
    /// Where to connect, or why the URL it was given cannot be used (each
    /// subscription then fails its connection attempts with that).
    settings: Result<ConnectionSettings, ConnectionError>,
    config: SubscriptionConfig,
}

impl PgNotifyEventBus {
    /// A bus on the database at `url` (libpq string or `postgresql://` URL).
    pub fn new(url: impl AsRef<str>) -> Self {
        PgNotifyEventBus {
            settings: ConnectionSettings::parse(url.as_ref()),
            config: SubscriptionConfig::default(),
        }
    }

    /// A bus on the database `settings` describe (TLS included).
    pub fn with_settings(settings: ConnectionSettings) -> Self {
        PgNotifyEventBus {
            settings: Ok(settings),
            config: SubscriptionConfig::default(),
        }
    }

    /// The same bus with other subscription settings.
    pub fn with_config(mut self, config: SubscriptionConfig) -> Self {
        self.config = config;
        self
    }

    /// Follows the feed after `from`, of one tenant or all (what
    /// `EventBus::subscribe` does, without the `async`).
    pub fn follow(&self, from: FeedPosition, tenant_id: Option<TenantId>) -> PgNotifySubscription {
        let (events, receiver) = mpsc::channel(self.config.buffer.max(1));
        let (stop, stopped) = watch::channel(false);
        let (link, watching) = watch::channel(Link::Connecting);
        let follower = Follower {
            settings: self.settings.clone(),
            config: self.config.clone(),
            tenant_id,
            position: from,
            events,
            link,
        };
        PgNotifySubscription {
            receiver,
            stop,
            link: watching,
            task: Some(tokio::spawn(follower.run(stopped))),
        }
    }
}

impl EventBus for PgNotifyEventBus {
    type Subscription = PgNotifySubscription;

    async fn publish(&self, _event: &StoredEvent) -> Result<(), BusError> {
        // The database notified listeners when the append committed.
        Ok(())
    }

    async fn subscribe(
        &self,
        from: FeedPosition,
        tenant_id: Option<TenantId>,
    ) -> Result<PgNotifySubscription, BusError> {
        Ok(self.follow(from, tenant_id))
    }
}

/// A running subscription: events in feed order.
pub struct PgNotifySubscription {
    receiver: mpsc::Receiver<StoredEvent>,
    stop: watch::Sender<bool>,
    link: watch::Receiver<Link>,
    task: Option<JoinHandle<()>>,
}

impl PgNotifySubscription {
    /// The connection's state, watched: every loss, reconnection and the
    /// end (`give_up_after`), for a caller that reports them.
    pub fn link(&self) -> watch::Receiver<Link> {
        self.link.clone()
    }
}

impl Subscription for PgNotifySubscription {
    async fn recv(&mut self) -> Option<StoredEvent> {
        self.receiver.recv().await
    }

    fn try_recv(&mut self) -> Option<StoredEvent> {
        self.receiver.try_recv().ok()
    }

    /// Stops following the feed and waits for the reader to finish.
    async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PgNotifySubscription {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The task behind a subscription.
struct Follower {
    settings: Result<ConnectionSettings, ConnectionError>,
    config: SubscriptionConfig,
    tenant_id: Option<TenantId>,
    position: FeedPosition,
    events: mpsc::Sender<StoredEvent>,
    link: watch::Sender<Link>,
}

/// Why one connected session of the follower ended.
enum SessionEnd {
    Stopped,
    Lost(EventStoreError),
}

impl Follower {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let mut backoff = self.config.min_backoff;
        let mut down_since = std::time::Instant::now();
        loop {
            match self.session(&mut stopped).await {
                SessionEnd::Stopped => return,
                SessionEnd::Lost(error) => {
                    if *self.link.borrow() == Link::Connected {
                        down_since = std::time::Instant::now();
                        backoff = self.config.min_backoff;
                    }
                    tracing::warn!(%error, retry_in = ?backoff, "feed subscription lost its connection");
                    if self
                        .config
                        .give_up_after
                        .is_some_and(|limit| down_since.elapsed() >= limit)
                    {
                        self.link.send_replace(Link::GaveUp(error.to_string()));
                        return;
                    }
                    self.link.send_replace(Link::Lost(error.to_string()));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped.changed() => return,
            }
            backoff = (backoff * 2).min(self.config.max_backoff);
            if self.events.is_closed() {
                return;
            }
        }
    }

    /// One connection: LISTEN, catch up, then read on every wake-up or tick.
    async fn session(&mut self, stopped: &mut watch::Receiver<bool>) -> SessionEnd {
        let lost = |e: tokio_postgres::Error| SessionEnd::Lost(EventStoreError::from(e));
        let connected = match &self.settings {
            Ok(settings) => settings.connect().await,
            Err(e) => Err(e.clone().into()),
        };
        let (client, mut connection) = match connected {
            Ok(pair) => pair,
            Err(ConnectError::Db(e)) => return lost(e),
            Err(ConnectError::Settings(e)) => {
                return SessionEnd::Lost(EventStoreError::Connection(e.to_string()))
            }
        };
        let (wake, mut woken) = mpsc::unbounded_channel::<()>();
        let tenant_text = self.tenant_id.map(|t| t.to_string());
        let driver = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        // Wake for our tenant, for "any tenant" (null), or for anything we cannot read.
                        let for_us = match (
                            &tenant_text,
                            serde_json::from_str::<serde_json::Value>(n.payload()),
                        ) {
                            (Some(tenant), Ok(payload)) => {
                                payload["tenant_id"].as_str().is_none_or(|t| t == tenant)
                            }
                            _ => true,
                        };
                        if for_us && wake.send(()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let result = async {
            client.batch_execute(&format!("SET application_name = 'forgeerp-subscription'; LISTEN {CHANNEL}")).await?;
            self.link.send_replace(Link::Connected);
            let read = client.prepare(self.page().statement()).await?;
            let mut tick = tokio::time::interval(self.config.poll_interval);
            // After a wake-up whose read found nothing, read again soon: the
            // event may be held back by an older transaction still in flight.
            let mut recheck: Option<Duration> = None;
            loop {
                let delivered = self.catch_up(&client, &read).await?;
                let Some(delivered) = delivered else {
                    return Ok(true); // the consumer is gone
                };
                recheck = match (recheck, delivered) {
                    (Some(delay), 0) if delay < RECHECK_LIMIT => Some(delay * 2),
                    _ => None,
                };
                tokio::select! {
                    woke = woken.recv() => {
                        if woke.is_none() {
                            return Err(Lost::Store(EventStoreError::Connection("notification stream ended".into())));
                        }
                        while woken.try_recv().is_ok() {} // one read serves every wake-up so far
                        recheck = Some(RECHECK_FIRST / 2);
                    }
                    _ = tokio::time::sleep(recheck.unwrap_or(Duration::from_secs(3600))), if recheck.is_some() => {}
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return Ok(true),
                }
            }
        }
        .await;
        driver.abort();
        match result {
            Ok(_) => SessionEnd::Stopped,
            Err(Lost::Db(e)) => lost(e),
            Err(Lost::Store(e)) => SessionEnd::Lost(e),
        }
    }
}

impl Follower {
    /// The next page to read: after the checkpoint, of the subscription's
    /// tenant or of every tenant.
    fn page(&self) -> FeedPage {
        FeedPage {
            after: self.position,
            max: self.config.page_size,
            tenant: self.tenant_id.map(|t| t.as_uuid()),
        }
    }

    /// Pages through the feed after the checkpoint until it has nothing more.
    /// Returns how many events were delivered, or None when the consumer is gone.
    async fn catch_up(
        &mut self,
        client: &tokio_postgres::Client,
        read: &tokio_postgres::Statement,
    ) -> Result<Option<usize>, Lost> {
        let mut delivered = 0;
        loop {
            let rows = client.query(read, &self.page().params()).await?;
            for row in &rows {
                let event = row_to_event(row).map_err(Lost::Store)?;
                let position = event.position();
                if self.events.send(event).await.is_err() {
                    return Ok(None);
                }
                self.position = position;
                delivered += 1;
            }
            if (rows.len() as i32) < self.config.page_size {
                return Ok(Some(delivered));
            }
        }
    }
}

/// An error that ends a session.
enum Lost {
    Db(tokio_postgres::Error),
    Store(EventStoreError),
}

impl From<tokio_postgres::Error> for Lost {
    fn from(e: tokio_postgres::Error) -> Self {
        Lost::Db(e)
    }
}

//! RTSP with gst-rtsp-server: one shared media fed from the camera's encoder
//! through an appsrc, never a pipeline (or an encoder) per viewer.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use crate::config::RtspConfig;
use crate::pipeline::inventory::Inventory;

/// The media each viewer session plays. The appsrc is fed by the camera's
/// StreamProducer, whose stream already carries SPS/PPS in front of every
/// keyframe (h264parse config-interval=-1 in the camera pipeline).
///
/// rtph264pay keeps its default config-interval=0 on purpose: with -1 it
/// inserts SPS/PPS before *each slice* of an IDR frame, and x264's
/// zero-latency mode writes several slices per frame, so every keyframe was
/// split in two and decoders reported corrupt frames until the next one.
const MEDIA_LAUNCH: &str = "( appsrc name=videosrc \
    ! rtph264pay name=pay0 pt=96 aggregate-mode=zero-latency )";

/// A running RTSP server; dropping it does not stop it, call [`RtspOutput::stop`].
pub struct RtspOutput {
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    clients: Arc<AtomicUsize>,
    server: gst_rtsp_server::RTSPServer,
    /// The listening socket's source in the server's main context.
    listening: Option<glib::SourceId>,
}

impl RtspOutput {
    /// Binds the port and serves `config.path` from `producer`.
    /// `camera` is the pipeline whose encoder feeds `producer`: the media
    /// pipelines share its clock and base time (see [`share_timeline`]).
    pub fn start(
        config: &RtspConfig,
        camera: &gst::Pipeline,
        producer: gst_utils::StreamProducer,
        inventory: Inventory,
        clients: Arc<AtomicUsize>,
    ) -> Result<Self> {
        // gst-rtsp-server reports a busy port only as "failed to attach main
        // context"; check first so the message names the port.
        TcpListener::bind(("0.0.0.0", config.port))
            .with_context(|| format!("rtsp.port {} cannot be used", config.port))?;

        let server = gst_rtsp_server::RTSPServer::new();
        server.set_service(&config.port.to_string());
        track_clients(&server, clients.clone(), config.session_timeout_s);

        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(MEDIA_LAUNCH);
        // Shared: every viewer of the path plays the same media.
        factory.set_shared(true);
        factory.set_protocols(gst_rtsp::RTSPLowerTrans::TCP | gst_rtsp::RTSPLowerTrans::UDP);
        feed_media_from(&factory, camera.clone(), producer, inventory);
        if !config.user.is_empty() {
            require_credentials(&server, &factory, &config.user, &config.password);
        }
        server
            .mount_points()
            .context("RTSP server has no mount points")?
            .add_factory(&config.path, factory);

        // gst-rtsp-server needs an iterated GLib main context: give it its own
        // thread so it never waits on tokio or on the camera.
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let listening = server
            .attach(Some(&context))
            .with_context(|| format!("RTSP server cannot listen on port {}", config.port))?;
        // Sessions whose viewer vanished (no TEARDOWN, no keep-alive) are
        // only removed when somebody calls cleanup().
        let pool = server
            .session_pool()
            .context("RTSP server has no session pool")?;
        let sweep = glib::timeout_source_new(
            Duration::from_secs(config.cleanup_interval_s.into()),
            None,
            glib::Priority::DEFAULT,
            move || {
                let removed = pool.cleanup();
                if removed > 0 {
                    tracing::info!(removed, "RTSP: expired sessions removed");
                }
                glib::ControlFlow::Continue
            },
        );
        sweep.attach(Some(&context));

        let loop_for_thread = main_loop.clone();
        let thread = std::thread::Builder::new()
            .name("rtsp".to_owned())
            .spawn(move || loop_for_thread.run())
            .context("starting the RTSP thread")?;
        Ok(Self {
            main_loop,
            thread: Some(thread),
            clients,
            server,
            listening: Some(listening),
        })
    }

    /// Viewers currently connected.
    pub fn client_count(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Disconnects every viewer, closes the port (a pipeline rebuilt on the
    /// same port binds it again at once) and ends the server's thread.
    pub fn stop(mut self) {
        use gst_rtsp_server::prelude::*;
        use gst_rtsp_server::RTSPFilterResult;
        self.server
            .client_filter(Some(&mut |_, _| RTSPFilterResult::Remove));
        if let Some(pool) = self.server.session_pool() {
            pool.filter(Some(&mut |_, _| RTSPFilterResult::Remove));
        }
        // In the server's own context (SourceId::remove looks in the
        // default one, and panics when the source is not there).
        if let Some(listening) = self.listening.take() {
            if let Some(source) = self.main_loop.context().find_source_by_id(&listening) {
                source.destroy();
            }
        }
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Viewers must log in as `user` (HTTP Basic, as RTSP clients and NVRs
/// send it): the server checks the credentials, the factory lets only that
/// role see and build the stream.
fn require_credentials(
    server: &gst_rtsp_server::RTSPServer,
    factory: &gst_rtsp_server::RTSPMediaFactory,
    user: &str,
    password: &str,
) {
    use gst_rtsp_server::prelude::*;
    const ROLE: &str = "viewer";
    let auth = gst_rtsp_server::RTSPAuth::new();
    let token = gst_rtsp_server::RTSPToken::builder()
        .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        .build();
    auth.add_basic(
        &gst_rtsp_server::RTSPAuth::make_basic(user, password),
        &token,
    );
    server.set_auth(Some(&auth));
    factory.add_role_from_structure(
        &gst::Structure::builder(ROLE)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build(),
    );
}

/// Hooks each new media (one at a time: the factory is shared) to the
/// encoder's stream. A shared media is unprepared when its last viewer
/// leaves and a new one is built for the next viewer, so the link is made
/// here, per media, and dropped when the media is unprepared.
fn feed_media_from(
    factory: &gst_rtsp_server::RTSPMediaFactory,
    camera: gst::Pipeline,
    producer: gst_utils::StreamProducer,
    inventory: Inventory,
) {
    let media_count = AtomicUsize::new(0);
    factory.connect_media_configure(move |_, media| {
        let element = media.element();
        let number = media_count.fetch_add(1, Ordering::Relaxed) + 1;
        let media_pipeline = top_level(&element);
        media_pipeline.set_property("name", format!("rtsp-media-{number}"));
        if let Some(pipeline) = media_pipeline.downcast_ref::<gst::Pipeline>() {
            crate::pipeline::share_timeline(&camera, pipeline);
            inventory.register(pipeline.upcast_ref());
        }
        let appsrc = element
            .downcast_ref::<gst::Bin>()
            .and_then(|bin| bin.by_name("videosrc"))
            .and_then(|src| src.downcast::<gst_app::AppSrc>().ok());
        let Some(appsrc) = appsrc else {
            tracing::error!("RTSP media has no appsrc named videosrc; viewers get no video");
            return;
        };
        match producer.add_consumer(&appsrc) {
            Ok(link) => {
                tracing::debug!(media = number, "RTSP media linked to the encoder");
                let link = Mutex::new(Some(link));
                media.connect_unprepared(move |_| {
                    tracing::debug!(media = number, "RTSP media unprepared; unlinking it");
                    if let Ok(mut link) = link.lock() {
                        link.take();
                    }
                });
            }
            Err(err) => tracing::error!("RTSP media cannot be linked to the encoder: {err}"),
        }
    });
}

/// The pipeline an element lives in (only an unparented object may be
/// renamed, and the top one is).
fn top_level(element: &gst::Element) -> gst::Element {
    let mut top = element.clone();
    while let Some(parent) = top.parent().and_then(|p| p.downcast::<gst::Element>().ok()) {
        top = parent;
    }
    top
}

/// Logs viewers coming and going with the current count, and applies the
/// session timeout to each new session.
fn track_clients(
    server: &gst_rtsp_server::RTSPServer,
    clients: Arc<AtomicUsize>,
    session_timeout_s: u32,
) {
    server.connect_client_connected(move |_, client| {
        let address = client_address(client);
        let now = clients.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(client = %address, clients = now, "RTSP viewer connected");
        client.connect_new_session(move |_, session| {
            session.set_timeout(session_timeout_s);
        });
        let clients = clients.clone();
        client.connect_closed(move |_| {
            let now = clients.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
            tracing::info!(client = %address, clients = now, "RTSP viewer disconnected");
        });
    });
}

/// The viewer's IP address. The bindings do not generate
/// `RTSPClient::connection()`, so this asks the C API directly.
fn client_address(client: &gst_rtsp_server::RTSPClient) -> String {
    use glib::translate::ToGlibPtr;
    // SAFETY: `client` is a valid GstRTSPClient for the duration of the call.
    // The connection it returns is owned by the client (transfer none) and
    // the IP string is owned by the connection; both outlive this function,
    // and the string is copied before returning.
    unsafe {
        let connection =
            gst_rtsp_server::ffi::gst_rtsp_client_get_connection(client.to_glib_none().0);
        if connection.is_null() {
            return "unknown".to_owned();
        }
        let ip = gst_rtsp::ffi::gst_rtsp_connection_get_ip(connection);
        if ip.is_null() {
            return "unknown".to_owned();
        }
        std::ffi::CStr::from_ptr(ip).to_string_lossy().into_owned()
    }
}

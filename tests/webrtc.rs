//! WebRTC over WHEP with two independent clients — headless Chromium
//! (tests/browser/whep.mjs) and Python's aiortc (tests/whep_client.py) —
//! reading the latency stamp from the decoded picture; ten peers on one
//! encoder; a peer that vanishes without DELETE; and what WHEP must refuse.

mod common;

use std::time::{Duration, Instant};

use common::{http_with, whep_client as aiortc, Edgecam};

const PEERS: &str = "edgecam_clients{output=\"webrtc\"}";

fn whep_url(edgecam: &Edgecam) -> String {
    edgecam.http_url("/whep/cam")
}

#[test]
fn chromium_plays_720p_over_whep_a_few_frames_behind_capture() {
    let mut config = common::config();
    config.camera.width = 1280;
    config.camera.height = 720;
    let edgecam = Edgecam::start(config);
    let origin = edgecam.http_url("");
    let report = common::browser(
        "whep.mjs",
        &[origin.trim_end_matches('/'), "10"],
        Duration::from_secs(90),
        &edgecam.log(),
    );
    println!("Chromium over WHEP, 1280x720@30: {report}");
    assert_eq!(report["width"], 1280, "{report}");
    let shown = report["shown"][0].as_u64().unwrap_or(0);
    assert!(shown >= 240, "{shown} frames shown in 10 s");
    assert!(
        report["stamped"].as_u64().unwrap_or(0) * 10 >= shown * 9,
        "{report}"
    );
    let p50 = report["latencyP50Ms"].as_f64().expect("p50");
    assert!(p50 < 300.0, "capture → display p50 {p50} ms");
    assert!(report["firstFrameMs"][0].as_u64().unwrap_or(u64::MAX) < 5000);
    assert_eq!(report["deleted"], serde_json::json!([200]));
    assert_eq!(report["errors"].as_array().map(Vec::len), Some(0));
    edgecam.wait_for_metric(PEERS, Duration::from_secs(5), |n| n == 0.0);
    assert_eq!(
        edgecam.metric("edgecam_webrtc_peers_closed_total{output=\"webrtc\",cause=\"deleted\"}"),
        Some(1.0)
    );
    // Nobody watches: the WebRTC pipeline is gone again.
    assert!(edgecam.metric("edgecam_webrtc_bytes_sent_total{output=\"webrtc\"}") > Some(0.0));
}

#[test]
fn aiortc_decodes_nearly_every_frame_and_ten_peers_share_one_encoder() {
    let edgecam = Edgecam::start(common::config());
    let url = whep_url(&edgecam);
    let one = aiortc(&["play", &url, "8", "1"], Duration::from_secs(60));
    println!("aiortc, one peer, 640x360@30 for 8 s: {one}");
    let frames = one[0]["frames"].as_u64().unwrap_or(0);
    assert!(frames >= 216, "aiortc decoded {frames} of 240 frames");
    assert!(one[0]["latency_p50_ms"].as_f64().is_some(), "no stamp read");
    edgecam.wait_for_metric(PEERS, Duration::from_secs(5), |n| n == 0.0);
    let pipelines_idle = edgecam.metric("edgecam_pipelines").expect("pipelines");

    let crowd = {
        let url = url.clone();
        std::thread::spawn(move || aiortc(&["play", &url, "8", "10"], Duration::from_secs(90)))
    };
    edgecam.wait_for_metric(PEERS, Duration::from_secs(30), |n| n == 10.0);
    let encoders = edgecam.metric("edgecam_encoders");
    let pipelines = edgecam.metric("edgecam_pipelines").expect("pipelines");
    let cpu = edgecam.metric("edgecam_process_cpu_percent");
    let ten = crowd.join().expect("crowd");
    let decoded: Vec<u64> = ten
        .as_array()
        .expect("peers")
        .iter()
        .map(|peer| peer["frames"].as_u64().unwrap_or(0))
        .collect();
    println!(
        "ten aiortc peers for 8 s: frames {decoded:?}; encoders {encoders:?}, pipelines \
         {pipelines_idle} → {pipelines}, edgecam CPU {cpu:?} %"
    );
    assert_eq!(encoders, Some(1.0), "one encoder for every peer");
    assert_eq!(
        pipelines,
        pipelines_idle + 1.0,
        "one WebRTC pipeline for all peers"
    );
    for (peer, frames) in decoded.iter().enumerate() {
        assert!(*frames >= 180, "peer {peer} decoded only {frames} frames");
    }
}

#[test]
fn a_peer_that_vanishes_without_delete_is_torn_down_within_ten_seconds() {
    let edgecam = Edgecam::start(common::config());
    let report = aiortc(&["vanish", &whep_url(&edgecam)], Duration::from_secs(60));
    let gone = Instant::now();
    assert!(report["session"].as_str().is_some(), "{report}");
    edgecam.wait_for_metric(PEERS, Duration::from_secs(10), |n| n == 0.0);
    println!(
        "a vanished peer was torn down {:?} after it died",
        gone.elapsed()
    );
    assert_eq!(
        edgecam.metric("edgecam_webrtc_peers_closed_total{output=\"webrtc\",cause=\"vanished\"}"),
        Some(1.0)
    );
}

/// An offer as a browser makes it (ICE credentials and a DTLS fingerprint,
/// H.264 among other codecs), whose peer never connects.
const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 09:08:76:60:7B:9E:64:43:0D:88:A5:10:F1:EE:66:45:7F:B0:A0:F6:F3:B5:2D:93:D6:57:D0:61:FC:3E:E4:3A\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

#[test]
fn whep_answers_what_it_can_and_refuses_the_rest_with_reasons() {
    let mut config = common::config();
    config.auth.viewer_token = "watch".to_owned();
    config.webrtc.max_peers = 1;
    config.webrtc.stun_server = "stun://stun.example:3478".to_owned();
    let edgecam = Edgecam::start(config);
    let url = edgecam.http_url("/whep/cam?token=watch");
    let sdp = "Content-Type: application/sdp";
    let post = |body: &str| http_with("POST", &url, &[sdp], Some(body));
    let pipelines_idle = edgecam.metric("edgecam_pipelines").expect("pipelines");

    let anonymous = http_with("POST", &whep_url(&edgecam), &[sdp], Some(OFFER));
    assert_eq!(anonymous.status, 401);
    for (body, status, reason) in [
        ("hello", 400, "not an SDP offer"),
        (&OFFER.replace("m=video", "m=audio"), 400, "no video"),
        (
            &OFFER.replace("a=recvonly", "a=sendonly"),
            400,
            "does not receive video",
        ),
        (&OFFER.replace(" H264/", " H265/"), 400, "no H.264"),
    ] {
        let reply = post(body);
        assert_eq!(reply.status, status, "{reason}: {}", reply.body);
        assert!(reply.body.contains(reason), "{reason}: {}", reply.body);
    }
    let wrong_type = http_with("POST", &url, &["Content-Type: text/plain"], Some(OFFER));
    assert_eq!(wrong_type.status, 415);
    let wrong_stream = http_with(
        "POST",
        &edgecam.http_url("/whep/door?token=watch"),
        &[sdp],
        Some(OFFER),
    );
    assert_eq!(wrong_stream.status, 404);
    assert!(
        wrong_stream.body.contains("/whep/cam"),
        "{}",
        wrong_stream.body
    );
    assert_eq!(http_with("GET", &url, &[], None).status, 405);
    // Nothing was left allocated by the refusals.
    assert_eq!(edgecam.metric(PEERS), Some(0.0));
    assert_eq!(edgecam.metric("edgecam_pipelines"), Some(pipelines_idle));

    // A good offer: an answer, the session, the ICE servers.
    let answered = post(OFFER);
    assert_eq!(answered.status, 201, "{}", answered.body);
    assert!(answered.head.contains("content-type: application/sdp"));
    assert!(
        answered.body.contains("a=rtpmap:102 H264/90000"),
        "{}",
        answered.body
    );
    assert!(
        answered.body.contains("packetization-mode=1"),
        "{}",
        answered.body
    );
    assert!(answered.body.contains("a=sendonly") && answered.body.contains("a=candidate:"));
    assert!(
        answered
            .head
            .contains("link: <stun:stun.example:3478>; rel=\"ice-server\""),
        "{}",
        answered.head
    );
    let location = answered
        .head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .expect("a Location")
        .trim()
        .to_owned();
    assert!(location.starts_with("/whep/cam/") && location.ends_with("?token=watch"));
    let options = http_with("OPTIONS", &url, &[], None);
    assert_eq!(options.status, 204);
    assert!(options.head.contains("link: <stun:"), "{}", options.head);

    // One peer is the limit here: the next is told to come back.
    let full = post(OFFER);
    assert_eq!(full.status, 503, "{}", full.body);
    assert!(full.head.contains("retry-after:"), "{}", full.head);

    // Trickled candidates are taken; an ICE restart is not.
    let session = edgecam.http_url(&location);
    let fragment = "Content-Type: application/trickle-ice-sdpfrag";
    let trickle = http_with(
        "PATCH",
        &session,
        &[fragment],
        Some("a=ice-ufrag:abcd\r\na=mid:0\r\na=candidate:1 1 udp 2113937151 192.0.2.9 50000 typ host\r\n"),
    );
    assert_eq!(trickle.status, 204, "{}", trickle.body);
    let restart = http_with("PATCH", &session, &[fragment], Some("a=ice-ufrag:new1\r\n"));
    assert_eq!(restart.status, 422, "{}", restart.body);

    assert_eq!(http_with("DELETE", &session, &[], None).status, 200);
    assert_eq!(http_with("DELETE", &session, &[], None).status, 404);
    edgecam.wait_for_metric(PEERS, Duration::from_secs(5), |n| n == 0.0);
    edgecam.wait_for_metric("edgecam_pipelines", Duration::from_secs(5), |n| {
        n == pipelines_idle
    });
}

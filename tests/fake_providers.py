"""Fake upstreams of the media and non-OpenAI chat providers, each as the catalog provider it stands
for (a pytest plugin, registered in tests/conftest.py's ``pytest_plugins``).

The session fixture (``*_server``) starts a fake once; the test fixture resets it and points the
catalog provider at it with the fake's key.
"""

import pytest

from tests.conftest import serve_provider_from, serve_queue_provider
from tests.fakes import cohere_upstream, gemini_upstream

# --- video jobs ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def veo_server():
    from tests.fakes.veo_upstream import FakeVeo

    fake = FakeVeo().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def runway_server():
    from tests.fakes.runway_upstream import FakeRunway

    fake = FakeRunway().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_veo(catalog, veo_server):
    """Gemini (Veo) enabled, pointed at the fake Veo, with its key."""
    veo_server.reset()
    serve_provider_from("gemini", veo_server.base_url, veo_server.api_key)
    return veo_server


@pytest.fixture
def fake_runway(catalog, runway_server):
    """Runway enabled, pointed at the fake, with its key."""
    runway_server.reset()
    serve_provider_from("runway", runway_server.base_url, runway_server.api_key)
    return runway_server


# --- fal.ai, Replicate and Stability AI (images and videos) ------------------------------------

@pytest.fixture(scope="session")
def fal_server():
    from tests.fakes.fal_queue import FakeFal

    fake = FakeFal().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def replicate_server():
    from tests.fakes.replicate_api import FakeReplicate

    fake = FakeReplicate().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_fal(catalog, fal_server):
    """fal enabled (the catalog's models and quirks), pointed at the fake queue, polled quickly."""
    serve_queue_provider("fal", fal_server)
    return fal_server


@pytest.fixture
def fake_replicate(catalog, replicate_server):
    """Replicate enabled (the catalog's models and quirks), pointed at the fake API, polled quickly."""
    serve_queue_provider("replicate", replicate_server)
    return replicate_server


@pytest.fixture(scope="session")
def stability_server():
    from tests.fakes.stability_upstream import FakeStability

    fake = FakeStability().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_stability(stability_server, catalog):
    """Stability AI's image API, as the catalog's `stability` provider."""
    stability_server.reset()
    serve_provider_from("stability", stability_server.base_url, stability_server.api_key)
    return stability_server


@pytest.fixture(scope="session")
def google_images_server():
    from tests.fakes.gemini_images_upstream import FakeGoogleImages

    fake = FakeGoogleImages().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_google_images(google_images_server, catalog):
    """The Gemini API with Imagen and the Gemini image models, as the catalog's `gemini` provider."""
    google_images_server.reset()
    serve_provider_from("gemini", google_images_server.base_url, google_images_server.api_key)
    return google_images_server


# --- audio ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def gemini_audio_server():
    from tests.fakes.gemini_audio_upstream import FakeGeminiAudio

    fake = FakeGeminiAudio().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_gemini_audio(gemini_audio_server, catalog):
    """The Gemini API with its TTS models and audio understanding, as the catalog's `gemini` provider."""
    gemini_audio_server.reset()
    serve_provider_from("gemini", gemini_audio_server.base_url, gemini_audio_server.api_key)
    return gemini_audio_server


@pytest.fixture(scope="session")
def gemini_server():
    fake = gemini_upstream.FakeGemini().start()
    yield fake
    fake.stop()


@pytest.fixture
def gemini(catalog, gemini_server):
    """The Gemini API (chat) as the catalog's `gemini` provider."""
    gemini_server.reset()
    serve_provider_from("gemini", gemini_server.base_url, gemini_upstream.API_KEY)
    return gemini_server


@pytest.fixture(scope="session")
def cohere_server():
    fake = cohere_upstream.FakeCohere().start()
    yield fake
    fake.stop()


@pytest.fixture
def cohere(catalog, cohere_server):
    """The Cohere API as the catalog's `cohere` provider."""
    cohere_server.reset()
    serve_provider_from("cohere", cohere_server.base_url, cohere_upstream.API_KEY)
    return cohere_server

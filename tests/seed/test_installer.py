"""The seed's installer examples ("Model installation" through "Other installer methods"),
run as written against the fake hub on 127.0.0.1 (repo ids and Civitai URLs point there).

torch is imported inside the one fixture that writes a ``.ckpt``, never at module level.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic.networks import AnyHttpUrl

from reconciler import (
    DownloadQueueService,
    HFModelSource,
    InstallStatus,
    LocalModelSource,
    ModelInstallService,
    ModelRecordServiceSQL,
    SchedulerPredictionType,
    URLModelSource,
)
from reconciler.events import Event
from reconciler.settings import AppSettings
from reconciler.testing.models import (
    write_diffusers_pipeline,
    write_lora_kohya,
    write_main_checkpoint,
    write_not_a_model,
    write_vae_checkpoint,
)
from tests.hub.fakehub import FakeHub
from tests.hub.repos import diffusers_repo_files

SD15 = "runwayml/stable-diffusion-v1-5"
SD21 = "stabilityai/stable-diffusion-2-1"


@pytest.fixture(scope="module")
def sd15_files() -> dict[str, bytes]:
    """runwayml/stable-diffusion-v1-5 as the seed uses it: a diffusers pipeline plus a
    pickled checkpoint in a subfolder (``OrangeMix/OrangeMix1.ckpt``)."""
    import torch
    from safetensors.torch import load_file

    files = diffusers_repo_files()
    with tempfile.TemporaryDirectory() as tmp:
        state = load_file(str(write_main_checkpoint(Path(tmp) / "om.safetensors", base="sd-1")))
        torch.save({"state_dict": state}, Path(tmp) / "OrangeMix1.ckpt")
        files["OrangeMix/OrangeMix1.ckpt"] = (Path(tmp) / "OrangeMix1.ckpt").read_bytes()
    return files


@pytest.fixture
def installer(hub_config: AppSettings) -> Iterator[ModelInstallService]:
    """The seed's "Initializing the installer", with its own record store and queue."""
    config = hub_config  # config = get_config()
    logger = logging.getLogger("seed")  # logger = InvokeAILogger.get_logger(config=config)
    record_store = ModelRecordServiceSQL(config.db_path, logger)  # the seed passes SqliteDatabase(config.db_path)
    queue = DownloadQueueService()
    queue.start()
    installer = ModelInstallService(app_config=config,
                                    record_store=record_store,
                                    download_queue=queue
                                    )
    installer.start()
    events: list[Event] = []
    installer.event_bus.subscribe(events.append)
    installer.events = events  # type: ignore[attr-defined]
    yield installer
    installer.stop()
    queue.stop()
    record_store.close()


def _events(installer: ModelInstallService, name: str, source: object) -> list[dict]:
    return [e.payload for e in installer.events if e.name == name and e.payload.get("source") == str(source)]


def test_initializing_the_installer(installer: ModelInstallService, hub_config: AppSettings) -> None:
    # installer.app_config, installer.record_store, installer.event_bus
    assert installer.app_config is hub_config
    assert isinstance(installer.record_store, ModelRecordServiceSQL)
    assert installer.record_store.all_models() == []
    assert hub_config.tmp_dir.is_dir()


def test_import_model_walk_through(installer: ModelInstallService, seed_hub: FakeHub, tmp_path: Path,
                                   sd15_files: dict[str, bytes]) -> None:
    """The seed's import_model() example: seven sources, wait_for_installs, source2job[source]."""
    opt = tmp_path / "opt" / "models"
    write_lora_kohya(opt / "sushi.safetensors", base="sd-1")
    write_diffusers_pipeline(opt / "sushi_diffusers", base="sd-1")
    seed_hub.add_repo(SD15, sd15_files)
    lora = write_lora_kohya(tmp_path / "tweaker.safetensors", base="sd-1").read_bytes()
    seed_hub.add_civitai_version(63006, 58390, files=[{"name": "detail-tweaker.safetensors", "bytes": lora,
                                                       "primary": True}])
    civitai = seed_hub.civitai_endpoint  # stands in for https://civitai.com

    source1 = LocalModelSource(path=opt / 'sushi.safetensors')  # a local safetensors file
    source2 = LocalModelSource(path=opt / 'sushi_diffusers')  # a local diffusers folder
    source3 = HFModelSource(repo_id='runwayml/stable-diffusion-v1-5')  # a repo_id
    source4 = HFModelSource(repo_id='runwayml/stable-diffusion-v1-5', subfolder='vae')  # a subfolder within a repo_id
    source5 = HFModelSource(repo_id='runwayml/stable-diffusion-v1-5', variant='fp16')  # a named variant of a HF model
    source6 = HFModelSource(repo_id='runwayml/stable-diffusion-v1-5', subfolder='OrangeMix/OrangeMix1.ckpt')  # path to an individual model file
    source7 = URLModelSource(url=f'{civitai}/api/download/models/63006')  # model located at a URL
    source8 = URLModelSource(url=f'{civitai}/api/download/models/63006', access_token='letmein')  # with an access token
    assert source8.access_token == 'letmein' and 'letmein' not in repr(source8) + str(source8)

    sources = [source1, source2, source3, source4, source5, source6, source7]
    for source in sources:
        install_job = installer.install_model(source)
        assert install_job.source is source

    source2job = installer.wait_for_installs(timeout=120)
    installed: dict[str, str] = {}
    failed: dict[str, str] = {}
    for source in sources:
        job = source2job[source]
        if job.complete:
            model_config = job.config_out
            model_key = model_config.key
            installed[str(source)] = model_key
        elif job.errored:
            failed[str(source)] = f"{source}: {job.error_type}.\nStack trace:\n{job.error}"
    # source3 and source5 are the same pipeline under the same name: the second to finish
    # finds the first's files at its destination and is refused, never overwriting them
    assert len(failed) == 1 and set(failed) <= {str(source3), str(source5)}, failed
    for text in failed.values():
        assert "Stack trace:\nTraceback (most recent call last)" in text
        assert "DuplicateModelException" in text and "is already installed as model" in text
    records = {c.key: c for c in installer.record_store.all_models()}
    assert set(installed.values()) == set(records)
    by_source = {str(s): records[installed[str(s)]] for s in sources if str(s) in installed}
    assert (by_source[str(source1)].type.value, by_source[str(source1)].format.value) == ("lora", "lycoris")
    assert (by_source[str(source2)].type.value, by_source[str(source2)].format.value) == ("main", "diffusers")
    assert by_source[str(source4)].type.value == "vae"
    assert (by_source[str(source6)].type.value, by_source[str(source6)].format.value) == ("main", "checkpoint")
    orange = installer.app_config.models_dir / by_source[str(source6)].path
    assert orange.is_file() and orange.read_bytes() == sd15_files["OrangeMix/OrangeMix1.ckpt"]
    assert (installer.app_config.models_dir / by_source[str(source7)].path).read_bytes() == lora
    # the source string finds the same job as the object
    assert source2job[str(source6)] is source2job[source6]


def test_monitoring_the_install_job(installer: ModelInstallService, seed_hub: FakeHub, tmp_path: Path,
                                    sd15_files: dict[str, bytes]) -> None:
    """"Monitoring the install job process": the job's fields and the four events, once each."""
    seed_hub.add_repo(SD15, sd15_files)
    source = HFModelSource(repo_id=SD15, subfolder="vae")
    job = installer.import_model(source, config={"description": "sd vae"})
    assert isinstance(job.id, int) and job.config_in == {"description": "sd vae"} and job.inplace is False
    installer.wait_for_job(job, timeout=0)  # 0: block until done
    assert job.status is InstallStatus.COMPLETED and job.complete and job.in_terminal_state
    assert not (job.waiting or job.downloading or job.running or job.errored or job.cancelled)
    assert job.source is source and job.config_out.description == "sd vae"
    assert job.local_path is not None and installer.app_config.tmp_dir in job.local_path.parents
    assert job.error_type is None and job.error is None

    downloading = _events(installer, "model_install_downloading", source)
    assert downloading, "remote installs report their download"
    last = downloading[-1]
    vae_total = sum(len(v) for k, v in sd15_files.items() if k.startswith("vae/") and ".fp16." in k
                    or k == "vae/config.json")
    assert last["bytes"] == last["total_bytes"] == vae_total
    assert last["local_path"] == str(job.local_path)
    assert last["parts"] and all(set(p) >= {"source", "local_path", "bytes", "total_bytes"} for p in last["parts"])
    assert sum(p["total_bytes"] for p in last["parts"]) == last["total_bytes"]
    assert all(p["local_path"].startswith(last["local_path"]) for p in last["parts"])
    assert len(_events(installer, "model_install_running", source)) == 1
    completed = _events(installer, "model_install_completed", source)
    assert len(completed) == 1 and completed[0]["key"] == job.config_out.key
    assert completed[0]["total_bytes"] == vae_total
    names = [e.name for e in installer.events if e.payload.get("source") == str(source)]
    assert names.index("model_install_downloading") < names.index("model_install_running")


def test_local_install_emits_running_and_completed_once(installer: ModelInstallService, tmp_path: Path) -> None:
    source = LocalModelSource(path=write_vae_checkpoint(tmp_path / "vae.safetensors", base="sd-1"))
    job = installer.import_model(source)
    installer.wait_for_job(job)
    assert job.complete
    assert _events(installer, "model_install_downloading", source) == [], "no downloading events for local models"
    assert len(_events(installer, "model_install_running", source)) == 1
    assert len(_events(installer, "model_install_completed", source)) == 1


def test_model_install_error_event(installer: ModelInstallService, tmp_path: Path) -> None:
    bad = write_not_a_model(tmp_path / "page.safetensors", "html")
    job = installer.import_model(LocalModelSource(path=bad))
    installer.wait_for_job(job)
    assert job.errored and job.status is InstallStatus.ERROR and job.error_type == "InvalidModelError"
    assert job.error.startswith("Traceback") and "page.safetensors" in job.error.splitlines()[-1]
    (event,) = _events(installer, "model_install_error", job.source)
    assert event["error_type"] == "InvalidModelError" and event["error"] == job.error
    assert installer.record_store.all_models() == []


def test_model_install_cancelled_event(installer: ModelInstallService, seed_hub: FakeHub, tmp_path: Path) -> None:
    data = write_vae_checkpoint(tmp_path / "v.safetensors", base="sd-1").read_bytes()
    seed_hub.add_repo("acme/slow", {"vae.safetensors": data})
    seed_hub.file_route("acme/slow", "vae.safetensors").drip = (256, 0.05)
    source = HFModelSource(repo_id="acme/slow", subfolder="vae.safetensors")
    job = installer.import_model(source)
    deadline = time.monotonic() + 20
    while not job.downloading and time.monotonic() < deadline:
        time.sleep(0.02)
    installer.cancel_job(job)
    installer.wait_for_job(job, timeout=30)
    assert job.cancelled and installer.record_store.all_models() == []
    assert len(_events(installer, "model_install_cancelled", source)) == 1


def test_model_configuration_and_probing_overrides(installer: ModelInstallService, seed_hub: FakeHub,
                                                   tmp_path: Path) -> None:
    """The seed's sd-2 example: override the prediction type and the name."""
    write_diffusers_pipeline(tmp_path / "sd21", base="sd-2")
    seed_hub.add_folder(SD21, tmp_path / "sd21")
    install_job = installer.import_model(
        source=HFModelSource(repo_id='stabilityai/stable-diffusion-2-1', variant='fp32'),
        config=dict(
            prediction_type=SchedulerPredictionType('v_prediction'),
            name='stable diffusion 2 base model',
        )
    )
    installer.wait_for_job(install_job)
    assert install_job.complete, install_job.error
    out = install_job.config_out
    assert out.name == 'stable diffusion 2 base model' and out.prediction_type is SchedulerPredictionType.VPrediction
    assert out.base_model.value == "sd-2"


def test_config_overrides_by_the_seeds_field_names(installer: ModelInstallService, tmp_path: Path) -> None:
    lora = write_lora_kohya(tmp_path / "l.safetensors", base="sd-1")
    job = installer.import_model(LocalModelSource(path=lora), config={"base_model": "sd-2", "name": "as-sd2"})
    installer.wait_for_job(job)
    assert job.complete, job.error
    assert job.config_out.base_model.value == "sd-2" and job.config_out.model_type.value == "lora"
    key = installer.register_path(write_vae_checkpoint(tmp_path / "v.safetensors"), {"model_type": "vae",
                                                                                      "base_model": "sdxl"})
    config = installer.record_store.get_model(key)
    assert (config.model_type.value, config.base_model.value, config.model_format.value) == (
        "vae", "sdxl", "checkpoint")


def test_heuristic_import_source_strings(installer: ModelInstallService, seed_hub: FakeHub, tmp_path: Path,
                                         sd15_files: dict[str, bytes]) -> None:
    seed_hub.add_repo(SD15, sd15_files)
    local = write_lora_kohya(tmp_path / "fred.safetensors", base="sdxl")
    jobs = [
        installer.heuristic_import(str(local)),                                          # a local path
        installer.heuristic_import(f"{SD15}:fp16:vae", {"name": "vae-fp16"}),            # vae submodel, fp16
        installer.heuristic_import(f"{SD15}:fp32:vae", {"name": "vae-fp32"}),            # vae, the fp32 variant
        installer.heuristic_import(f"{SD15}::v1-5-pruned-emaonly.safetensors"),          # one file
        installer.heuristic_import(f"{SD15}:fp16:OrangeMix/OrangeMix1.ckpt", {"name": "om"}),  # one file, fp16
    ]
    done = installer.wait_for_installs()
    assert all(done[job.source].complete for job in jobs), [j.error for j in jobs]
    vae16 = installer.app_config.models_dir / jobs[1].config_out.path
    vae32 = installer.app_config.models_dir / jobs[2].config_out.path
    assert {p.name for p in vae16.iterdir()} == {"config.json", "diffusion_pytorch_model.fp16.safetensors"}
    assert {p.name for p in vae32.iterdir()} == {"config.json", "diffusion_pytorch_model.safetensors"}
    assert (installer.app_config.models_dir / jobs[3].config_out.path).read_bytes() == \
        sd15_files["v1-5-pruned-emaonly.safetensors"]


def test_url_model_source_takes_an_any_http_url(installer: ModelInstallService, seed_hub: FakeHub,
                                                tmp_path: Path) -> None:
    data = write_lora_kohya(tmp_path / "x.safetensors", base="sd-1").read_bytes()
    seed_hub.add_civitai_version(63006, 58390, files=[{"name": "x.safetensors", "bytes": data, "primary": True}])
    source = URLModelSource(url=AnyHttpUrl(f"{seed_hub.civitai_endpoint}/api/download/models/63006"))
    job = installer.import_model(source)
    installer.wait_for_job(job)
    assert job.complete, job.error
    assert (installer.app_config.models_dir / job.config_out.path).read_bytes() == data


def test_other_installer_methods(installer: ModelInstallService, tmp_path: Path) -> None:
    a = LocalModelSource(path=write_lora_kohya(tmp_path / "a.safetensors", base="sd-1"))
    job = installer.import_model(a)
    assert installer.wait_for_job(job, 0) is job
    assert installer.list_jobs() == [job]
    assert installer.get_job_by_source(a) == [job] and installer.get_job_by_source(str(a)) == [job]
    assert installer.get_job_by_id(job.id) is job
    installer.cancel_job(job)  # a finished job stays as it ended
    assert job.complete
    installer.prune_jobs()
    assert installer.list_jobs() == []

    outside = tmp_path / "outside" / "v.safetensors"
    write_vae_checkpoint(outside, base="sd-1")
    registered = installer.register_path(outside)
    assert installer.record_store.get_model(registered).path == str(outside.absolute())
    installed = installer.install_path(outside, {"name": "copied-vae"})
    copied = installer.app_config.models_dir / installer.record_store.get_model(installed).path
    assert copied.is_file() and copied != outside
    installer.unregister(registered)
    assert not installer.record_store.exists(registered) and outside.exists()
    installer.delete(installed)  # inside models_dir: the copy goes
    assert not copied.exists() and outside.exists()
    again = installer.register_path(outside)
    installer.delete(again)  # outside models_dir: conditionally kept
    assert outside.exists()
    again = installer.register_path(outside)
    installer.unconditionally_delete(again)
    assert not outside.exists()


def test_download_and_cache(installer: ModelInstallService, seed_hub: FakeHub, tmp_path: Path) -> None:
    data = write_vae_checkpoint(tmp_path / "v.safetensors", base="sd-1").read_bytes()
    seed_hub.add_repo("acme/vae", {"vae.safetensors": data})
    path = installer.download_and_cache(HFModelSource(repo_id="acme/vae", subfolder="vae.safetensors"))
    assert path.read_bytes() == data and installer.app_config.cache_dir in path.parents
    gets = len([r for r in seed_hub.requests if r.method == "GET" and "/resolve/" in r.path])
    assert installer.download_and_cache("acme/vae::vae.safetensors", None, 10) == path
    assert len([r for r in seed_hub.requests if r.method == "GET" and "/resolve/" in r.path]) == gets
    assert installer.record_store.all_models() == []


def test_start_syncs_to_config_without_deleting(hub_config: AppSettings, tmp_path: Path) -> None:
    """installer.start(invoker): sync_to_config() registers what lies on disk, reports what
    vanished, and deletes nothing."""
    models = hub_config.models_dir
    dropped = write_lora_kohya(models / "sd-1" / "lora" / "dropped.safetensors", base="sd-1")
    store = ModelRecordServiceSQL(hub_config.db_path)
    store.add_model("gone", {"name": "gone", "model_type": "vae", "model_format": "checkpoint",
                             "base_model": "sd-1", "path": "sd-1/vae/gone.safetensors"})
    installer = ModelInstallService(app_config=hub_config, record_store=store)
    try:
        installer.start(invoker=None)
        names = {c.name for c in store.all_models()}
        assert names == {"dropped", "gone"}, "the file on disk is registered; the vanished record stays"
        assert installer.last_sync.missing == ["gone"]
        assert dropped.is_file()
    finally:
        installer.stop()
        store.close()


@pytest.mark.parametrize(("precision", "weights"), [
    ("auto", "diffusion_pytorch_model.fp16.safetensors"),
    ("float32", "diffusion_pytorch_model.safetensors"),
])
def test_the_variant_is_filled_in_from_the_precision(hub_config: AppSettings, seed_hub: FakeHub,
                                                     sd15_files: dict[str, bytes], precision: str,
                                                     weights: str) -> None:
    """"The variant, if not provided, will be automatically filled in with fp32 if the user
    has requested full precision, and fp16 otherwise" (``model/name::vae``)."""
    seed_hub.add_repo(SD15, sd15_files)
    settings = hub_config.model_copy(update={"precision": precision})
    store = ModelRecordServiceSQL(settings.db_path)
    installer = ModelInstallService(app_config=settings, record_store=store)
    try:
        job = installer.heuristic_import(f"{SD15}::vae")
        installer.wait_for_job(job)
        assert job.complete, job.error
        folder = settings.models_dir / job.config_out.path
        assert {p.name for p in folder.iterdir()} == {"config.json", weights}
    finally:
        installer.stop()
        store.close()

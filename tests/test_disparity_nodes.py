"""The disparity nodes inside the real host: model folders, loading a file, estimating, errors."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("timm")


@pytest.fixture()
def depth_folder(pack, tmp_path, monkeypatch):
    import folder_paths

    paths, exts = folder_paths.folder_names_and_paths["depthanything"]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "depthanything", ([str(tmp_path), *paths], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return tmp_path


def _node(node_id):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[node_id]


def test_model_folders_are_registered(pack):
    import folder_paths

    for name in ("depthanything", "midas"):
        paths, exts = folder_paths.folder_names_and_paths[name]
        assert any(p.endswith(name) for p in paths)
        assert {".pth", ".pt", ".safetensors"} <= set(exts)


def test_extra_model_paths_yaml_folders_are_kept(host, pack, tmp_path, monkeypatch):
    """extra_model_paths.yaml is read before custom nodes load: its folder must survive registration."""
    import importlib.util

    import folder_paths

    # The host's own reader (another `utils` package may shadow the host's on sys.path).
    spec = importlib.util.spec_from_file_location("host_extra_config", host / "utils" / "extra_config.py")
    extra_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extra_config)
    load_extra_path_config = extra_config.load_extra_path_config

    from headless.comfy_host import pack_module
    from testkit.tiny_depth import write_tiny_depth_anything

    files = pack_module("nodes.depth_model_files")
    monkeypatch.setattr(folder_paths, "folder_names_and_paths", dict(folder_paths.folder_names_and_paths))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    del folder_paths.folder_names_and_paths["depthanything"]
    (tmp_path / "extra.yaml").write_text(f"mine:\n  base_path: {tmp_path}\n  depthanything: depth_models\n")
    load_extra_path_config(str(tmp_path / "extra.yaml"))
    write_tiny_depth_anything(tmp_path / "depth_models" / "from_yaml.safetensors")
    files.register_model_folders()
    paths, exts = folder_paths.folder_names_and_paths["depthanything"]
    assert paths[0] == str(tmp_path / "depth_models") and ".safetensors" in exts
    assert "depthanything/from_yaml.safetensors" in files.model_choices()


def _model_name_input(node_id="StereoDisparityModelLoader"):
    schema = _node(node_id).GET_SCHEMA()
    return next(i for i in schema.inputs if i.id == "model_name")


def test_loader_lists_present_files_first_then_the_downloadable_ones_after_a_label(pack, depth_folder):
    from headless.comfy_host import pack_module
    from testkit.tiny_depth import write_tiny_depth_anything

    files = pack_module("nodes.depth_model_files")
    label = files.DOWNLOAD_LABEL
    official = [f"{k.folder}/{k.filename}" for k in files.KNOWN_FILES]
    write_tiny_depth_anything(depth_folder / "tiny_da2.safetensors")
    write_tiny_depth_anything(depth_folder / "depth_anything_v2_vits.pth")  # an official file, present
    model_name = _model_name_input()
    options = model_name.options
    cut = options.index(label)
    present, downloadable = options[:cut], options[cut + 1:]
    assert "depthanything/tiny_da2.safetensors" in present and "depthanything/depth_anything_v2_vits.pth" in present
    assert downloadable == [o for o in official if o not in present]
    assert model_name.default == present[0] != label
    # Every official file is still an option, so a saved workflow that names one still validates.
    assert set(official) <= set(options)

    with pytest.raises(ValueError, match="label.*choose a file above or below it"):
        _node("StereoDisparityModelLoader").execute(model_name=label, precision="fp32", download_if_missing=False)


def test_with_no_files_the_list_starts_at_the_label_and_defaults_to_the_first_official_file(pack, depth_folder, monkeypatch):
    import folder_paths
    from headless.comfy_host import pack_module

    files = pack_module("nodes.depth_model_files")
    monkeypatch.setattr(folder_paths, "get_filename_list", lambda folder: [])
    model_name = _model_name_input()
    first = files.KNOWN_FILES[0]
    assert model_name.options[0] == files.DOWNLOAD_LABEL
    assert model_name.default == f"{first.folder}/{first.filename}"


def test_load_and_estimate_through_the_nodes(depth_folder):
    from testkit.tiny_depth import write_tiny_depth_anything

    write_tiny_depth_anything(depth_folder / "tiny_da2.pth")
    (model,) = _node("StereoDisparityModelLoader").execute(
        model_name="depthanything/tiny_da2.pth", precision="fp32", download_if_missing=False
    ).result
    assert model.architecture.family == "depth_anything_v2"
    image = torch.rand(2, 30, 45, 3, generator=torch.Generator().manual_seed(0))
    disparity, preview, convergence = _node("StereoEstimateDisparity").execute(
        disparity_model=model, image=image, resolution=28, normalization="per image", batch_size=1
    ).result
    assert disparity.shape == (2, 30, 45) and preview.shape == (2, 30, 45, 3)
    assert disparity.dtype == torch.float32
    assert disparity.amin() == 0.0 and abs(disparity.amax().item() - 1.0) < 1e-6
    assert torch.equal(preview[..., 0], disparity) and torch.equal(preview[..., 2], disparity)
    assert convergence == 0.0
    again = _node("StereoEstimateDisparity").execute(
        disparity_model=model, image=image, resolution=28, normalization="per image", batch_size=2
    ).result[0]
    # another batch size runs other kernels: equal up to rounding, relative to the map's range (1)
    assert (again - disparity).abs().max() / disparity.abs().max() < 1e-4


def test_midas_file_from_the_midas_folder(pack, tmp_path, monkeypatch):
    import folder_paths
    from testkit.tiny_depth import write_tiny_midas

    paths, exts = folder_paths.folder_names_and_paths["midas"]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "midas", ([str(tmp_path), *paths], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    write_tiny_midas(tmp_path / "tiny_beit.pt", kind="beit")
    (model,) = _node("StereoDisparityModelLoader").execute(
        model_name="midas/tiny_beit.pt", precision="fp32", download_if_missing=False
    ).result
    assert model.architecture.family == "midas_beit_large"
    image = torch.rand(3, 40, 72, 3, generator=torch.Generator().manual_seed(2))
    disparity, _, _ = _node("StereoEstimateDisparity").execute(
        disparity_model=model, image=image, resolution=0, normalization="per batch", batch_size=2
    ).result
    assert disparity.shape == (3, 40, 72)
    assert disparity.amin() == 0.0 and abs(disparity.amax().item() - 1.0) < 1e-6
    per_image_max = disparity.flatten(1).amax(1)
    assert (per_image_max < 1.0 - 1e-6).any()  # one scale for the batch, not each frame stretched


def test_missing_file_names_the_file_folder_and_url(depth_folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as err:
        _node("StereoDisparityModelLoader").execute(
            model_name="depthanything/depth_anything_v2_vitb.pth", precision="auto", download_if_missing=True
        )
    msg = str(err.value)
    assert "depth_anything_v2_vitb.pth" in msg and "HF_HUB_OFFLINE" in msg
    assert "https://huggingface.co/depth-anything/Depth-Anything-V2-Base" in msg
    assert str(depth_folder) in msg and "CC-BY-NC-4.0" in msg


def test_corrupt_and_foreign_files_get_clear_errors(depth_folder):
    (depth_folder / "broken.pth").write_bytes(b"this is not a checkpoint")
    loader = _node("StereoDisparityModelLoader")
    with pytest.raises(ValueError, match="could not read depth model file"):
        loader.execute(model_name="depthanything/broken.pth", precision="fp32", download_if_missing=False)
    torch.save({"model.diffusion_model.out.2.weight": torch.zeros(4, 320, 3, 3)}, depth_folder / "sd.pth")
    with pytest.raises(ValueError, match="Supported depth models"):
        loader.execute(model_name="depthanything/sd.pth", precision="fp32", download_if_missing=False)


def test_estimator_rejects_rgba(depth_folder):
    from testkit.tiny_depth import write_tiny_depth_anything

    write_tiny_depth_anything(depth_folder / "tiny_da2.pth")
    (model,) = _node("StereoDisparityModelLoader").execute(
        model_name="depthanything/tiny_da2.pth", precision="fp32", download_if_missing=False
    ).result
    with pytest.raises(ValueError, match="RGBA"):
        _node("StereoEstimateDisparity").execute(
            disparity_model=model, image=torch.rand(1, 16, 16, 4), resolution=28, normalization="per image"
        )


def test_depth_to_disparity_node(pack):
    node = _node("StereoDepthToDisparity")
    depth = torch.linspace(0, 1, 8).expand(1, 6, 8).unsqueeze(-1).expand(-1, -1, -1, 3)
    (out,) = node.execute(invert=True, normalization="per image", gamma=1.0, blur=0.0, width=4, height=3,
                          image=depth).result
    assert out.shape == (1, 3, 4)
    assert out[0, 0, 0] > out[0, 0, -1]
    (from_mask,) = node.execute(invert=False, normalization="none", gamma=1.0, blur=0.0, width=0, height=0,
                                mask=torch.full((2, 5, 5), 0.3)).result
    torch.testing.assert_close(from_mask, torch.full((2, 5, 5), 0.3))
    with pytest.raises(ValueError, match="connect 'image' or 'mask'"):
        node.execute(invert=False, normalization="none", gamma=1.0, blur=0.0, width=0, height=0)


def test_da3_files_are_listed_under_their_official_names(depth_folder):
    schema = _node("StereoDisparityModelLoader").GET_SCHEMA()
    options = next(i for i in schema.inputs if i.id == "model_name").options
    for repo in ("DA3MONO-LARGE", "DA3METRIC-LARGE", "DA3-BASE", "DA3-SMALL"):
        assert f"depthanything/{repo}/model.safetensors" in options


@pytest.mark.parametrize("repo,family", [("DA3METRIC-LARGE", "da3_metric"), ("DA3MONO-LARGE", "da3_mono"),
                                         ("DA3-SMALL", "da3_any_view")])
def test_da3_file_in_its_official_folder_loads_and_estimates(depth_folder, repo, family):
    from testkit.tiny_depth import write_tiny_da3

    write_tiny_da3(depth_folder / repo / "model.safetensors", "any_view" if repo == "DA3-SMALL" else "mono")
    (model,) = _node("StereoDisparityModelLoader").execute(
        model_name=f"depthanything/{repo}/model.safetensors", precision="fp32", download_if_missing=False
    ).result
    assert model.architecture.family == family
    frames = torch.rand(4, 30, 44, 3, generator=torch.Generator().manual_seed(3))
    estimate = _node("StereoEstimateDisparity").execute
    metric = family == "da3_metric"
    disparity, preview, convergence = estimate(
        disparity_model=model, image=frames, resolution=42, normalization="per batch", batch_size=3,
        temporal_smoothing=0.5, screen_depth=1e-4 if metric else 0.0,
    ).result
    assert disparity.shape == (4, 30, 44) and preview.shape == (4, 30, 44, 3)
    assert 0.0 <= disparity.amin() and disparity.amax() <= 1.0
    # A screen nearer than everything: all content behind it, convergence 1 (0 when not asked for).
    assert convergence == (1.0 if metric else 0.0)
    plain = estimate(disparity_model=model, image=frames, resolution=42, normalization="per batch").result[0]
    assert (disparity[1:] - disparity[:-1]).abs().mean() < (plain[1:] - plain[:-1]).abs().mean()


def test_screen_depth_with_a_relative_model_is_refused(depth_folder):
    from testkit.tiny_depth import write_tiny_da3

    write_tiny_da3(depth_folder / "DA3MONO-LARGE" / "model.safetensors", "mono")
    (model,) = _node("StereoDisparityModelLoader").execute(
        model_name="depthanything/DA3MONO-LARGE/model.safetensors", precision="fp32", download_if_missing=False
    ).result
    with pytest.raises(ValueError, match="metric"):
        _node("StereoEstimateDisparity").execute(
            disparity_model=model, image=torch.rand(1, 20, 20, 3), resolution=28, normalization="per image",
            screen_depth=3.0,
        )


def test_depth_to_disparity_node_converts_true_depth(pack):
    z = torch.tensor([[[1.0, 2.0, 5.0, 10.0]]])
    node = _node("StereoDepthToDisparity")
    (d,) = node.execute(invert=False, normalization="per image", gamma=1.0, blur=0.0, width=0, height=0, mask=z,
                        conversion="depth").result
    torch.testing.assert_close(d, torch.tensor([[[1.0, 4 / 9, 1 / 9, 0.0]]]))
    (old,) = node.execute(invert=True, normalization="per image", gamma=1.0, blur=0.0, width=0, height=0, mask=z).result
    torch.testing.assert_close(old, torch.tensor([[[1.0, 8 / 9, 5 / 9, 0.0]]]))


def test_video_depth_anything_files_are_offered_with_their_licences(depth_folder):
    from stereo_pack.nodes.depth_model_files import KNOWN_FILES, licence_note

    schema = _node("StereoDisparityModelLoader").GET_SCHEMA()
    model_name = next(i for i in schema.inputs if i.id == "model_name")
    for prefix in ("", "metric_"):
        for size in "sbl":
            assert f"depthanything/{prefix}video_depth_anything_vit{size}.pth" in model_name.options
    licences = {k.filename: k.license for k in KNOWN_FILES}
    assert licences["video_depth_anything_vits.pth"] == "Apache-2.0"
    assert licences["video_depth_anything_vitb.pth"] == licences["video_depth_anything_vitl.pth"] == "CC-BY-NC-4.0"
    assert "video_depth_anything_vitl.pth" in model_name.tooltip and "CC-BY-NC-4.0" in model_name.tooltip
    assert licence_note("depthanything/video_depth_anything_vits.pth") is None
    assert "non-commercial" in licence_note("depthanything/metric_video_depth_anything_vitb.pth")


@pytest.mark.parametrize("name,family", [("video_depth_anything_vitl.pth", "video_depth_anything"),
                                         ("metric_video_depth_anything_vits.pth", "video_depth_anything_metric")])
def test_video_depth_anything_through_the_nodes(depth_folder, caplog, name, family):
    import logging

    from testkit.tiny_depth import write_tiny_video_depth_anything
    from stereo_pack.stereo_ops.depth.video_inference import video_depth

    write_tiny_video_depth_anything(depth_folder / name)
    with caplog.at_level(logging.WARNING, logger="StereoDiffusion"):
        (model,) = _node("StereoDisparityModelLoader").execute(
            model_name=f"depthanything/{name}", precision="fp32", download_if_missing=False
        ).result
    assert model.architecture.family == family and model.architecture.temporal
    # The Large file's licence is said when it is chosen; the Small one needs no warning.
    assert ("non-commercial" in caplog.text) == ("vitl" in name)
    frames = torch.rand(34, 24, 36, 3, generator=torch.Generator().manual_seed(4))
    estimate = _node("StereoEstimateDisparity").execute
    disparity, preview, convergence = estimate(
        disparity_model=model, image=frames, resolution=28, normalization="per batch", batch_size=4,
        # nearer than anything (the random model's depth reaches 0, clamped to 1e-6 m): convergence 1
        screen_depth=1e-7 if "metric" in name else 0.0,
    ).result
    assert disparity.shape == (34, 24, 36) and preview.shape == (34, 24, 36, 3)
    assert disparity.amin() == 0.0 and abs(disparity.amax().item() - 1.0) < 1e-6
    assert convergence == (1.0 if "metric" in name else 0.0)
    # The node runs the windowed procedure over the batch as one clip.
    depth = video_depth(model.patcher.model, frames, input_size=28, metric="metric" in name, micro_batch=4)
    if "metric" in name:
        depth = 1.0 / depth.clamp_min(1e-6)
    want = (depth - depth.min()) / (depth.max() - depth.min())
    assert (disparity - want).abs().max() < 1e-5
    streamed = estimate(disparity_model=model, image=frames[:5], resolution=28, normalization="per batch",
                        video_mode="streaming").result[0]
    assert streamed.shape == (5, 24, 36)

"""Seed 001's example flow (CPR's README), with only its import lines changed."""

# ruff: noqa
from glob import glob
from os import makedirs
from os.path import join, exists

from databacked.integrations.prefect import cpr_serializer
from databacked.integrations.prefect import ImageSource
from databacked.integrations.prefect import ImageTarget
from databacked.integrations.prefect import task_input_hash
from prefect import flow, task
from databacked.integrations.prefect import DaskTaskRunner

from scipy.ndimage import gaussian_filter


@task()
def list_files(input_data_dir):
    images = []
    for f in glob(join(input_data_dir, "*.tif")):
        images.append(
            ImageSource.from_path(
                f,
                metadata={
                    "axes": "YX",
                    "unit": "micron",
                },
                resolution=[1 / 0.134, 1 / 0.134],
            )
        )

    return images


@task(
    cache_key_fn=task_input_hash
)  # Use cpr.utilities.utilities.task_input_hash to hash cpr.Resource.Resource input parameters correctly
def denoise_image(result_dir, image: ImageSource, sigma):
    output = ImageTarget.from_path(
        path=join(result_dir, f"{image.get_name()}.tif"),
        metadata=image.get_metadata(),
        resolution=image.get_resolution(),
    )

    output.set_data(gaussian_filter(image.get_data(), sigma))

    return output


@task(cache_key_fn=task_input_hash)
def segment_image(result_dir: str, denoised: ImageTarget, threshold: float):
    output = ImageTarget.from_path(
        path=join(result_dir, f"{denoised.get_name()}.tif"),
        metadata=denoised.get_metadata(),
        resolution=denoised.get_resolution(),
    )

    output.set_data(denoised.get_data() > threshold)

    return output


task_runner = DaskTaskRunner(
    cluster_class="dask.distributed.LocalCluster",
    cluster_kwargs={
        "n_workers": 8,
        "processes": True,
        "threads_per_worker": 1,
    },
)


@flow(
    name="Example",
    cache_result_in_memory=False,
    persist_result=True,
    result_serializer=cpr_serializer(),  # Use CPR serializer to catch cpr.Resource.Resource objects.
    task_runner=task_runner,
)
def measure_flow(
    input_data_dir: str = "/home/tibuch/Data/broad/nuclei_U2OS/images/",
    result_root_dir: str = "/home/tibuch/Data/broad/nuclei_U2OS/",
    denoise_sigma: float = 2,
    threshold: float = 400,
):

    assert exists(result_root_dir), "Output directory does not exist."

    denoising_results = join(result_root_dir, "denoised")
    segmentation_results = join(result_root_dir, "segmented")
    makedirs(denoising_results, exist_ok=True)
    makedirs(segmentation_results, exist_ok=True)

    img_files = list_files.submit(input_data_dir).result()

    for file in img_files:
        denoised = denoise_image.submit(denoising_results, file, denoise_sigma)

        segmented = segment_image.submit(segmentation_results, denoised, threshold)


if __name__ == "__main__":
    measure_flow(
        input_data_dir="/home/tibuch/Data/broad/nuclei_U2OS/images/",
        result_root_dir="/home/tibuch/Data/broad/nuclei_U2OS/",
        denoise_sigma=2,
        threshold=400,
    )

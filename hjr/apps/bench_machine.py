"""What `hjr bench` and `hjr bench --export` report of the machine: the device,
peak memory, and how they write their figures and progress."""

import os
import platform
import sys

import keras
import tensorflow as tf

from data_pipeline.files import write_json as write_file
from hjr.apps.bench_step import peak_host_rss_mib


def device_info() -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    names = [
        tf.config.experimental.get_device_details(g).get("device_name", g.name)
        for g in gpus
    ]
    cpu = platform.processor() or platform.machine()
    info = {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "gpus": names,
        "tpu": bool(tf.config.list_logical_devices("TPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    info["summary"] = ", ".join(names) if names else info["cpu"] + " (no GPU)"
    return info


def memory() -> dict:
    result = {"peak_host_rss_mib": peak_host_rss_mib()}
    for gpu in tf.config.list_logical_devices("GPU"):
        info = tf.config.experimental.get_memory_info(gpu.name)
        result[f"peak_{gpu.name.split(':', 1)[-1].lower().replace(':', '')}_mib"] = (
            round(info["peak"] / 2**20, 1)
        )
    return result


def write_json(result: dict, json_path) -> None:
    if json_path:
        write_file(json_path, result)


def progress(line):
    print(line, file=sys.stderr, flush=True)

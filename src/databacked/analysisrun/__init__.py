"""Seed 003's runner: one analysis script for notebooks, local parallel runs and orchestrators.

    import databacked.analysisrun as ar

    ac = ar.read_context(params=Parameters, image_analysis_results=ImageAnalysisResults,
                         manual_input=ar.ManualInput(...), output_dir="./out")
    results = ac.run_analysis(analyze=analyze, postprocess=postprocess)

Every lane is a databacked call keyed by ``analyze``'s fingerprint, the parameters and the
lane's cleansed data: a rerun with the same inputs starts no process.
"""

from databacked.analysisrun.args import AnalyzeArgs, ImageCollector, PostprocessArgs
from databacked.analysisrun.context import AnalysisContext, read_context
from databacked.analysisrun.inputs import ManualInput, NoParams, VirtualFile
from databacked.analysisrun.interactive import scan_model_input
from databacked.analysisrun.messages import AnalysisRunError, ExitCodes, exit_with_error
from databacked.analysisrun.scanner import (
    CleansedData,
    Fields,
    ImageAnalysisResultSpec,
    Lanes,
    entity_filter,
    filter_by_entity,
    scan,
)

image_analysis_result_spec = ImageAnalysisResultSpec
"""analysisrun's later spelling of ImageAnalysisResultSpec."""

__all__ = [
    "AnalysisContext",
    "AnalysisRunError",
    "AnalyzeArgs",
    "CleansedData",
    "ExitCodes",
    "Fields",
    "ImageAnalysisResultSpec",
    "ImageCollector",
    "Lanes",
    "ManualInput",
    "NoParams",
    "PostprocessArgs",
    "VirtualFile",
    "entity_filter",
    "exit_with_error",
    "filter_by_entity",
    "image_analysis_result_spec",
    "read_context",
    "scan",
    "scan_model_input",
]

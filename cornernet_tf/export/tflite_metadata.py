"""TFLite model metadata for object detectors, written with the official schema.

The metadata (`metadata_schema.fbs`, the schema the LiteRT/TFLite Task Library
and MediaPipe Tasks read) is a `ModelMetadata` flatbuffer stored in one of the
model's buffers and named `TFLITE_METADATA` in the model's metadata list; the
files it refers to (here the label map) are appended to the `.tflite` file as a
zip archive, so that the file is both a TFLite model and a zip.

The schema's generated Python classes come from the `mediapipe` wheel
(`mediapipe.tasks.metadata`), the same schema that `tflite-support` ships;
`tflite-support` itself pins protobuf 3 and cannot share an environment with
TensorFlow 2.21, and MediaPipe's own metadata writers need a compiled module
that its Linux wheel does not include. Only the generated flatbuffer classes
are used here.

MediaPipe's `ObjectDetector` finds the four outputs of a detector with in-model
NMS by the names of their tensor metadata (`location`, `category`, `score`,
`number of detections`), whatever order the converter left the tensors in; the
location tensor's `BoundingBoxProperties` give the box layout, the category
tensor's `TENSOR_VALUE_LABELS` file the class names.
"""

import io
import zipfile

import numpy as np

from cornernet_tf.spec.exported_io import DETECTOR_OUTPUTS

__all__ = [
    "LABEL_FILE",
    "METADATA_NAME",
    "OUTPUT_METADATA_NAMES",
    "add_detector_metadata",
    "read_detector_metadata",
]

METADATA_NAME = "TFLITE_METADATA"
LABEL_FILE = "labels.txt"
# Exported output name -> tensor metadata name MediaPipe and the Task Library look for.
OUTPUT_METADATA_NAMES = DETECTOR_OUTPUTS
# No field or type of a schema version above 1.0.0 is used.
_MIN_PARSER_VERSION = "1.0.0"
_MODEL_IDENTIFIER = b"TFL3"
_METADATA_IDENTIFIER = b"M001"


def _schemas():
    """The generated flatbuffer classes: (metadata schema, TFLite model schema)."""
    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb
        from mediapipe.tasks.metadata import schema_py_generated as model_fb
    except ImportError as error:
        raise RuntimeError(
            "writing TFLite detector metadata needs the `mediapipe` package "
            "(pip install 'cornernet_tf[deploy]')."
        ) from error
    return metadata_fb, model_fb


def _labels_file(labels) -> bytes:
    return "".join(f"{label}\n" for label in labels).encode()


def _metadata_buffer(
    *, name, description, version, labels, input_name, input_float, output_names
) -> bytes:
    """The `ModelMetadata` flatbuffer of a detector (see `add_detector_metadata`)."""
    fb, _ = _schemas()
    import flatbuffers

    image = fb.TensorMetadataT()
    image.name = input_name
    image.description = "RGB image, values 0-255, the model's fixed input size."
    image.content = fb.ContentT()
    image.content.contentPropertiesType = fb.ContentProperties.ImageProperties
    image.content.contentProperties = fb.ImagePropertiesT()
    image.content.contentProperties.colorSpace = fb.ColorSpaceType.RGB
    if input_float:
        # Identity normalisation: the graph takes 0-255 floats and normalises itself.
        normalization = fb.NormalizationOptionsT()
        normalization.mean = [0.0]
        normalization.std = [1.0]
        unit = fb.ProcessUnitT()
        unit.optionsType = fb.ProcessUnitOptions.NormalizationOptions
        unit.options = normalization
        image.processUnits = [unit]
    stats = fb.StatsT()
    stats.max = [255.0]
    stats.min = [0.0]
    image.stats = stats

    descriptions = {
        "location": "Boxes [1, N, 4]: ymin, xmin, ymax, xmax as fractions of the input size.",
        "category": "Class index of each box (float), a line of the label file.",
        "score": "Score of each box (soft-NMS score, 0-1).",
        "number of detections": "Number of valid boxes (float); rows past it are zero.",
    }
    outputs = []
    for exported in output_names:
        meta_name = OUTPUT_METADATA_NAMES[exported]
        tensor = fb.TensorMetadataT()
        tensor.name = meta_name
        tensor.description = descriptions[meta_name]
        tensor.content = fb.ContentT()
        if meta_name == "location":
            box = fb.BoundingBoxPropertiesT()
            box.index = [1, 0, 3, 2]  # left, top, right, bottom at xmin, ymin, xmax, ymax
            box.type = fb.BoundingBoxType.BOUNDARIES
            box.coordinateType = fb.CoordinateType.RATIO
            tensor.content.contentPropertiesType = fb.ContentProperties.BoundingBoxProperties
            tensor.content.contentProperties = box
        else:
            tensor.content.contentPropertiesType = fb.ContentProperties.FeatureProperties
            tensor.content.contentProperties = fb.FeaturePropertiesT()
        if meta_name == "category":
            label_file = fb.AssociatedFileT()
            label_file.name = LABEL_FILE
            label_file.description = "Class names, one a line, line i for class i."
            label_file.type = fb.AssociatedFileType.TENSOR_VALUE_LABELS
            tensor.associatedFiles = [label_file]
        outputs.append(tensor)

    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image]
    subgraph.outputTensorMetadata = outputs
    model = fb.ModelMetadataT()
    model.name = name
    model.description = description
    model.version = version
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = _MIN_PARSER_VERSION
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), _METADATA_IDENTIFIER)
    return bytes(builder.Output())


def add_detector_metadata(
    flatbuffer: bytes,
    *,
    labels,
    name: str = "CornerNet",
    description: str = "CornerNet object detector.",
    version: str = "",
) -> bytes:
    """A `.tflite` detector with its metadata and label file.

    The output tensor metadata follow the order of the model's output tensors,
    named from each tensor's signature output name (`OUTPUT_METADATA_NAMES`),
    so the converter's output order does not matter. An existing
    `TFLITE_METADATA` entry is replaced.

    Args:
        flatbuffer: a converted detector with one input and the four outputs
            of `OUTPUT_METADATA_NAMES` (signature output names).
        labels: class names, index order (written as the label file).
        name: model name in the metadata.
        description: model description.
        version: model version string.

    Returns:
        The `.tflite` bytes (model flatbuffer followed by the zipped label file).

    Raises:
        ValueError: the model's signature does not have those outputs, or no labels.
    """
    from ai_edge_litert.interpreter import Interpreter

    labels = [str(label) for label in labels]
    if not labels or any(not label or "\n" in label for label in labels):
        raise ValueError(
            "add_detector_metadata: `labels` must be non-empty single-line class names, got "
            f"{labels!r}."
        )
    interpreter = Interpreter(model_content=flatbuffer)
    if len(interpreter.get_signature_list()) != 1:
        raise ValueError(
            "add_detector_metadata: the model must have one signature (convert it from a "
            "SavedModel or with its trackable object), got "
            f"{sorted(interpreter.get_signature_list())}."
        )
    signature = interpreter.get_signature_runner()
    inputs = signature.get_input_details()
    by_index = {d["index"]: key for key, d in signature.get_output_details().items()}
    output_names = [by_index.get(d["index"]) for d in interpreter.get_output_details()]
    if len(inputs) != 1 or sorted(map(str, output_names)) != sorted(OUTPUT_METADATA_NAMES):
        raise ValueError(
            "add_detector_metadata: the model must have one input and the outputs "
            f"{sorted(OUTPUT_METADATA_NAMES)}, got {output_names}."
        )
    ((input_name, input_details),) = inputs.items()
    metadata = _metadata_buffer(
        name=name,
        description=description,
        version=version,
        labels=labels,
        input_name=input_name,
        input_float=input_details["dtype"] == np.float32,
        output_names=output_names,
    )

    _, model_fb = _schemas()
    import flatbuffers

    model = model_fb.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    model.metadata = [m for m in model.metadata or [] if m.name != METADATA_NAME.encode()]
    buffer = model_fb.BufferT()
    buffer.data = np.frombuffer(metadata, np.uint8)
    model.buffers.append(buffer)
    entry = model_fb.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(flatbuffer) + len(metadata) + 4096)
    builder.Finish(model.Pack(builder), _MODEL_IDENTIFIER)

    stream = io.BytesIO(bytes(builder.Output()))
    stream.seek(0, io.SEEK_END)
    # Appended to the flatbuffer: readers find the archive from its end.
    with zipfile.ZipFile(stream, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr(LABEL_FILE, _labels_file(labels))
    return stream.getvalue()


def read_detector_metadata(flatbuffer: bytes) -> dict:
    """The detector metadata of a `.tflite` file, as `add_detector_metadata` writes it.

    Args:
        flatbuffer: the `.tflite` bytes.

    Returns:
        `name`, `input` (tensor metadata name), `normalization` ((mean, std)
        or None), `outputs` (tensor metadata names in output tensor order),
        `box_index` (the location tensor's `BoundingBoxProperties.index`) and
        `labels` (the label file's lines).

    Raises:
        ValueError: the file has no `TFLITE_METADATA`.
    """
    fb, model_fb = _schemas()
    model = model_fb.Model.GetRootAs(flatbuffer, 0)
    index = None
    for i in range(model.MetadataLength()):
        if model.Metadata(i).Name() == METADATA_NAME.encode():
            index = model.Metadata(i).Buffer()
    if index is None:
        raise ValueError("read_detector_metadata: the model has no TFLITE_METADATA.")
    buffer = model.Buffers(index).DataAsNumpy().tobytes()
    metadata = fb.ModelMetadataT.InitFromPackedBuf(bytearray(buffer), 0)
    subgraph = metadata.subgraphMetadata[0]
    image = subgraph.inputTensorMetadata[0]
    normalization = None
    for unit in image.processUnits or []:
        if unit.optionsType == fb.ProcessUnitOptions.NormalizationOptions:
            normalization = (list(unit.options.mean), list(unit.options.std))
    outputs = [t.name.decode() for t in subgraph.outputTensorMetadata]
    box_index = None
    for tensor in subgraph.outputTensorMetadata:
        if tensor.content.contentPropertiesType == fb.ContentProperties.BoundingBoxProperties:
            box_index = [int(i) for i in tensor.content.contentProperties.index]
    with zipfile.ZipFile(io.BytesIO(flatbuffer)) as archive:
        labels = archive.read(LABEL_FILE).decode().splitlines()
    return {
        "name": metadata.name.decode(),
        "input": image.name.decode(),
        "normalization": normalization,
        "outputs": outputs,
        "box_index": box_index,
        "labels": labels,
    }

"""Detection annotation formats converted to the COCO 2017 layout `cornernet-train` reads.

Each reader turns one format into `Conversion` (images with boxes as
continuous pixel corners, and every problem found with its `file:line`):

    voc.read_voc(...)        Pascal VOC XML (flat folder, or Annotations/ + JPEGImages/)
    yolo.read_yolo(...)      YOLO labels/*.txt with data.yaml or classes.txt
    csv_table.read_csv(...)  filename,width,height,class,xmin,ymin,xmax,ymax
    coco_json.read_coco(...) any COCO JSON with an image folder

`writer.write_split` writes a `Conversion` as `<root>/annotations/instances_<split>.json`
plus `<root>/<split>/`; `split.split_train_val` divides one into train and val.
The conventions of each format are in docs/custom_data.md.
"""

"""EHR-native intake: FHIR R4, HL7 v2 and DICOM as the EHR sends them (docs/EHR_INTAKE.md).

Modules, one concept each (pure functions, no I/O except ``subjects``' key read):

* ``detect``   which format a message body is in, by its shape alone;
* ``note``     the note a message yields (``EhrNote``), deterministic event ids, text decoding;
* ``subjects`` source identifiers -> SUBJECT_ID (keyed HMAC, or the raw value on opt-in);
* ``html``     HTML reduced to text;
* ``fhir``     DocumentReference / DiagnosticReport / Bundle -> notes (strict pydantic subset);
* ``hl7``      MDM^T02/T04 and ORU^R01 (ER7) -> notes (python-hl7 for the structure);
* ``dicom``    a DICOM Part 10 file -> the image model's 8-bit RGB PNG (pydicom, numpy, Pillow).

Nothing here is imported at a router's cold start: ``events.parse_message`` imports the parser a
body needs, and ``images`` imports ``dicom`` (and so pydicom and numpy) only for a DICOM image.
"""

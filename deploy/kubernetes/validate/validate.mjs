// Validate Kubernetes and KEDA manifests offline against the schemas compiled into
// kubernetes-models (Kubernetes OpenAPI) and @kubernetes-models/keda (KEDA CRDs).
// Usage: node validate.mjs FILE.yaml...   Prints one JSON line per document; exit 1 on any error.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import * as appsV1 from "kubernetes-models/apps/v1";
import * as coreV1 from "kubernetes-models/v1";
import * as policyV1 from "kubernetes-models/policy/v1";
import * as kedaV1alpha1 from "@kubernetes-models/keda/keda.sh/v1alpha1";

const models = {
  "apps/v1": appsV1,
  v1: coreV1,
  "policy/v1": policyV1,
  "keda.sh/v1alpha1": kedaV1alpha1,
};

let failed = false;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(JSON.stringify({ file, ok: false, error: String(doc.errors[0]) }));
      failed = true;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    const Model = models[obj.apiVersion]?.[obj.kind];
    const where = { file, kind: obj.kind, name: obj.metadata?.name };
    if (!Model) {
      console.log(JSON.stringify({ ...where, ok: false, error: `no schema for ${obj.apiVersion} ${obj.kind}` }));
      failed = true;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(JSON.stringify({ ...where, ok: true }));
    } catch (error) {
      console.log(JSON.stringify({ ...where, ok: false, error: String(error.message ?? error) }));
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);

#pragma once
// The default finding table: common findings of chest, abdomen and pelvis CT reports, in the JSON
// format of eval/findings.hpp (written for this project). Datasets with their own vocabulary load
// their own table with FindingTable::load.
#include <string_view>

#include <nlohmann/json.hpp>

#include "ctmllm/eval/findings.hpp"

namespace ctmllm::eval {

inline constexpr std::string_view kDefaultFindingTableJson = R"json({
  "negation_cues": ["no", "not", "without", "negative for", "free of", "absence of", "absent", "unremarkable",
                    "none", "nor", "ruled out"],
  "scope_breaks": ["but", "however", "although", "whereas", "except"],
  "kinds": [
    {"name": "lung_nodule", "patterns": [["lung*|pulmonary|upper lobe*|lower lobe*|middle lobe*|lingula*", "nodul*"]]},
    {"name": "lung_opacity", "patterns": [["lung*|pulmonary|upper lobe*|lower lobe*|middle lobe*|lingula*", "opacit*|consolidat*|shadow*|infiltrat*|ground glass"]]},
    {"name": "emphysema", "patterns": ["emphysema*|bulla|bullae"]},
    {"name": "atelectasis", "patterns": ["atelecta*"]},
    {"name": "pneumothorax", "patterns": ["pneumothora*"]},
    {"name": "pleural_effusion", "patterns": [["pleura*", "effusion*|fluid"], "hydrothorax"]},
    {"name": "pericardial_effusion", "patterns": [["pericardi*", "effusion*|fluid"]]},
    {"name": "cardiomegaly", "patterns": ["cardiomegaly", ["heart|cardiac", "enlarg*"]]},
    {"name": "vascular_calcification", "patterns": [["calcif*", "coronary|aorta|aortic|arter*|vessel*|vascular"]]},
    {"name": "lymphadenopathy", "patterns": ["lymphadenopath*", ["lymph node*", "enlarg*|swollen"]]},
    {"name": "liver_lesion", "patterns": [["liver|hepatic", "cyst*|lesion*|mass*|nodul*|hypodens*|hemangioma*|metasta*"]]},
    {"name": "fatty_liver", "patterns": ["steatosis", ["fatty", "liver|hepatic"]]},
    {"name": "hepatomegaly", "patterns": ["hepatomegaly", ["liver", "enlarg*"]]},
    {"name": "gallstone", "patterns": ["gallstone*|cholelith*", ["gallbladder", "stone*|calcul*"]]},
    {"name": "biliary_dilatation", "patterns": [["bile duct*|biliary", "dilat*"]]},
    {"name": "splenomegaly", "patterns": ["splenomegaly", ["spleen|splenic", "enlarg*"]]},
    {"name": "pancreatic_lesion", "patterns": [["pancrea*", "cyst*|lesion*|mass*|nodul*"]]},
    {"name": "kidney_stone", "patterns": ["nephrolith*", ["kidney*|renal", "stone*|calcul*"]]},
    {"name": "kidney_cyst", "patterns": [["kidney*|renal", "cyst*"]]},
    {"name": "hydronephrosis", "patterns": ["hydronephros*|hydroureter*", ["renal pelvis|calyc*|ureter*", "dilat*"]]},
    {"name": "ascites", "patterns": ["ascites", ["peritoneal|abdominal cavity", "fluid|effusion*"]]},
    {"name": "pelvic_effusion", "patterns": [["pelvic|pelvis", "effusion*|fluid"]]},
    {"name": "bowel_wall_thickening", "patterns": [["bowel|intestin*|colon*|rectum|rectal|gastric|stomach", "wall", "thicken*"]]},
    {"name": "bladder_wall_thickening", "patterns": [["bladder", "wall", "thicken*"]]},
    {"name": "prostate_enlargement", "patterns": [["prostat*", "enlarg*|hyperplasia|hypertroph*"]]},
    {"name": "bone_lesion", "patterns": [["bone*|osseous|vertebra*|rib|ribs", "lesion*|destruct*|fracture*|metasta*"]]}
  ]
})json";

inline FindingTable default_finding_table() {
  return FindingTable::from_json(nlohmann::json::parse(kDefaultFindingTableJson), "default finding table");
}

}  // namespace ctmllm::eval

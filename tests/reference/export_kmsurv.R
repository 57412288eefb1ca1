# Write Klein and Moeschberger's bone-marrow transplant data (KMsurv::bmt,
# 137 patients; "Survival Analysis", 2nd ed., 2003, section 1.3) to data/kmsurv_bmt.csv.
# Columns: group (1 ALL, 2 AML low risk, 3 AML high risk), t1 time to death or
# last follow-up, t2 disease-free survival time, d1 dead, d2 relapsed, d3 relapsed or
# dead, ta/da acute GVHD time/indicator, tc/dc chronic GVHD, tp/dp platelet
# recovery, z1 patient age, z2 donor age, z3 patient sex, ... (see ?KMsurv::bmt).
library(KMsurv)
data(bmt)
write.csv(bmt, "data/kmsurv_bmt.csv", row.names = FALSE)

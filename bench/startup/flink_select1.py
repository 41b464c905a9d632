"""`SELECT 1` in Apache Flink from the shell, through PyFlink's TableEnvironment
(a local mini-cluster; every server on 127.0.0.1). The PyPI package has no
flink-sql-gateway jar, so Flink's own SQL client (bin/sql-client.sh) cannot
start from it (NoClassDefFoundError: .../gateway/service/context/DefaultContext)."""
from pyflink.common import Configuration
from pyflink.table import EnvironmentSettings, TableEnvironment

conf = Configuration()
for k in ["rest.bind-address", "rest.address", "jobmanager.bind-host", "taskmanager.bind-host",
          "taskmanager.host", "jobmanager.rpc.address"]:
    conf.set_string(k, "127.0.0.1")
settings = EnvironmentSettings.new_instance().in_batch_mode().with_configuration(conf).build()
TableEnvironment.create(settings).execute_sql("SELECT 1").print()
